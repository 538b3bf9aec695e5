from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from videosearch.corpus import world as world_module
from videosearch.corpus.annotations import read_moments
from videosearch.corpus.video import read_frames
from videosearch.corpus.world import SPLITS, WorldConfig, generate_world, load_video_specs
from videosearch.corpus.world_queries import Claim, claim_holds
from videosearch.corpus.world_spec import VideoSpec, sample_family
from videosearch.errors import ConfigError
from videosearch.folders import FolderInUseError

TINY = WorldConfig(families={"train": 1, "val": 1, "test": 1}, family_size=2)


def test_splits_have_disjoint_videos_and_every_query_fits_exactly_one_video(small_world: Path) -> None:
    seen: set[str] = set()
    for split in SPLITS:
        specs = {vid: VideoSpec.from_dict(row) for vid, row in load_video_specs(small_world, split).items()}
        files = {p.stem for p in (small_world / "videos" / split).glob("*.mp4")}
        assert files == set(specs) and not files & seen
        seen |= files
        lines = [json.loads(line) for line in (small_world / f"{split}.jsonl").read_text().splitlines()]
        moments = read_moments(small_world / f"{split}.jsonl").moments
        assert moments, f"{split} has no queries"
        for moment, line in zip(moments, lines):
            claim = Claim.from_dict(line["claim"])
            assert [vid for vid, spec in specs.items() if claim_holds(claim, spec)] == [moment.video_id]
            event = specs[moment.video_id].events[line["event_index"]]
            assert (moment.start_s, moment.end_s) == (event.start_s, event.end_s)
            assert 0 <= moment.start_s < moment.end_s <= moment.duration_s
            assert 8 <= len(moment.query.split()) <= 26


def test_videos_decode_with_the_annotated_duration(small_world: Path) -> None:
    moment = read_moments(small_world / "test.jsonl").moments[0]
    video = read_frames(small_world / "videos" / "test" / f"{moment.video_id}.mp4", fps=1.0)
    assert abs(video.duration_s - moment.duration_s) < 0.5
    assert video.frames.shape[1:] == (64, 64, 3)
    np.testing.assert_allclose(np.diff(video.timestamps_s), 1.0, atol=0.01)


def test_families_are_near_duplicates_that_differ_in_one_thing() -> None:
    family = sample_family(np.random.default_rng(7), "f", 5)
    base = family[0]
    assert len(family) == 5 and len({m.variant for m in family[1:]}) == 4
    for variant in family[1:]:
        differences = (variant.scene != base.scene) + sum(
            (a.colour, a.size) != (b.colour, b.size) for a, b in zip(variant.actors, base.actors)) + sum(
            (e.actor, e.kind, e.param) != (f.actor, f.kind, f.param) for e, f in zip(variant.events, base.events))
        assert 1 <= differences <= 2, variant.variant  # a swap changes two event positions, a flip may touch a size


def test_generation_is_deterministic_and_reused(tmp_path: Path, small_world: Path) -> None:
    config = WorldConfig.preset("small")
    out = generate_world(tmp_path / "w", seed=3, config=config, workers=1)
    for split in SPLITS:
        assert (out / f"{split}.jsonl").read_text() == (small_world / f"{split}.jsonl").read_text()
    stamp = (out / "videos" / "test").stat().st_mtime_ns
    generate_world(out, seed=3, config=config)
    assert (out / "videos" / "test").stat().st_mtime_ns == stamp, "a complete world is reused, not rewritten"
    with pytest.raises(ConfigError, match="another seed"):
        generate_world(out, seed=4, config=config)


def test_one_split_alone_is_the_same_files_as_in_the_whole_world(tmp_path: Path, small_world: Path) -> None:
    out = generate_world(tmp_path / "w", seed=3, config=WorldConfig.preset("small"), workers=1, splits=("test",))
    assert (out / "test.jsonl").read_text() == (small_world / "test.jsonl").read_text(), "query ids included"
    assert (out / "test_videos.jsonl").read_text() == (small_world / "test_videos.jsonl").read_text()
    for video in sorted((small_world / "videos" / "test").iterdir())[:2]:  # the mp4 header holds a creation time
        assert np.array_equal(read_frames(out / "videos" / "test" / video.name).frames, read_frames(video).frames)
    assert not (out / "train.jsonl").exists() and not (out / "videos" / "train").exists()
    assert json.loads((out / "world.json").read_text())["splits"] == ["test"]
    with pytest.raises(ConfigError, match="another seed or config"):  # not taken for the whole world
        generate_world(out, seed=3, config=WorldConfig.preset("small"))
    with pytest.raises(ConfigError, match="unknown split"):
        generate_world(tmp_path / "x", seed=3, config=TINY, splits=("tset",))


def test_other_seeds_give_other_worlds(tmp_path: Path, small_world: Path) -> None:
    config = WorldConfig(families={"train": 1, "val": 1, "test": 2}, family_size=3)
    out = generate_world(tmp_path / "w", seed=11, config=config, workers=1)
    assert (out / "test.jsonl").read_text() != (small_world / "test.jsonl").read_text()


def test_bad_world_configs_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="small"):
        WorldConfig.preset("huge")
    with pytest.raises(ConfigError, match="family_size"):
        WorldConfig(family_size=9)
    with pytest.raises(ConfigError, match="families"):
        WorldConfig(families={"train": 0, "val": 1, "test": 1})


def test_a_folder_of_the_users_files_is_refused_untouched(tmp_path: Path, run_cli) -> None:
    out = tmp_path / "project"
    (out / "videos" / "train").mkdir(parents=True)
    (out / "videos" / "train" / "holiday.mp4").write_bytes(b"precious")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FolderInUseError, match="not a synthetic world"):
        generate_world(out, seed=0, config=TINY, workers=1)
    code, _, err = run_cli("world", "generate", "--out", out, "--size", "small", "--workers", "1")
    assert code == 2 and "choose a new or empty folder" in err and "Traceback" not in err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "notes.txt", "videos", "videos/train", "videos/train/holiday.mp4"]
    assert (out / "videos" / "train" / "holiday.mp4").read_bytes() == b"precious"


def test_an_interrupted_generation_is_ours_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "w"
    real_run_jobs = world_module._run_jobs

    def die_at_val(jobs: list, workers: int, label: str) -> None:
        if "val" in label:
            raise KeyboardInterrupt
        real_run_jobs(jobs, workers, label)

    monkeypatch.setattr(world_module, "_run_jobs", die_at_val)
    with pytest.raises(KeyboardInterrupt):
        generate_world(out, seed=0, config=TINY, workers=1)
    monkeypatch.undo()
    assert (out / world_module.PARTIAL_MARKER).is_file() and not (out / "world.json").exists()
    generate_world(out, seed=0, config=TINY, workers=1)
    assert (out / "world.json").is_file() and not (out / world_module.PARTIAL_MARKER).exists()
    assert len(list((out / "videos" / "test").glob("*.mp4"))) == 2


def test_an_unreadable_world_json_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "world.json").write_text("{")
    with pytest.raises(ConfigError, match="world.json is unreadable"):
        generate_world(tmp_path, seed=0, config=TINY, workers=1)
