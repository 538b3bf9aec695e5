"""`index build` and `index add` killed with SIGKILL at random moments, then resumed: after every kill the index
folder loads and holds exactly the videos it should, and the finished index equals an uninterrupted run's.

Each round reruns the command (the resume) and kills it again; a last rerun finishes. A kill exactly between the
two renames of a save is a window of microseconds: tests/engine/test_engine_persistence.py stops a save there.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from killing import VIDEOSEARCH, kill_videosearch_after, kill_when, run_videosearch

from videosearch.embed import MiniEmbedder
from videosearch.engine import SearchEngine
from videosearch.errors import VideosearchError

pytestmark = pytest.mark.kill


def measured_run(folder: Path, *args: object) -> tuple[float, float]:
    """Run `videosearch ARGS` to the end; returns its duration and how long `folder` kept changing (from the first
    change to the last: the save into it), in seconds."""
    stamp = folder.stat().st_mtime_ns
    start = time.monotonic()
    changes = []

    def record_change() -> bool:
        nonlocal stamp
        if folder.stat().st_mtime_ns != stamp:
            stamp = folder.stat().st_mtime_ns
            changes.append(time.monotonic())
        return False  # never kill: this run is measured

    kill_when([VIDEOSEARCH, *map(str, args)], record_change, poll_s=0.001)
    duration_s = time.monotonic() - start
    assert changes, f"videosearch {args} never wrote into {folder}"
    return duration_s, changes[-1] - changes[0] + 0.01


def kill_at_random_points(index: Path, spans_s: tuple[float, float], rounds: int, seed: int,
                          *args: object) -> Iterator[bool]:
    """Run the command `rounds` times, killing it each time; yields whether it had finished first.

    `spans_s` are the measured run's duration and save time. Even rounds kill after a delay drawn from their own
    slice of the run (early ones in start-up, later ones in decoding and embedding); odd rounds kill at a random
    moment of their own slice of the save (timed from the first change of the folder holding the index), which
    timed kills almost never hit.
    """
    duration_s, save_s = spans_s
    rng = random.Random(seed)
    saves = max(2, rounds // 2)  # slices of the save; at 3 rounds its one save kill falls in the publishing half
    for i in range(rounds):
        if i % 2 == 0:
            yield kill_videosearch_after(duration_s * rng.uniform(i / rounds, (i + 1) / rounds), *args)
        else:
            j = saves - 1 - i // 2  # the first save kill falls in the last slice of the save, the next earlier
            yield kill_when_folder_changes(index.parent, save_s * rng.uniform(j / saves, (j + 1) / saves), *args)


def kill_when_folder_changes(folder: Path, delay_s: float, *args: object) -> bool:
    """Start `videosearch ARGS`, SIGKILL it `delay_s` after `folder` changes; True if it had finished first."""
    stamp = folder.stat().st_mtime_ns
    deadline = None

    def changed_a_while_ago() -> bool:
        nonlocal deadline
        if deadline is None and folder.stat().st_mtime_ns != stamp:
            deadline = time.monotonic() + delay_s
        return deadline is not None and time.monotonic() >= deadline

    return kill_when([VIDEOSEARCH, *map(str, args)], changed_a_while_ago, poll_s=0.001)


UNFINISHED = "unfinished"


def load_ids(index: Path) -> set[str] | str | None:
    """The ids of the index at `index`, None when there is none, UNFINISHED for a build saved before its end
    (which `load` refuses); every other failure fails the test."""
    try:
        engine = SearchEngine.load(index)
    except VideosearchError as exc:
        if "stopped after" in str(exc):
            assert set(SearchEngine.load(index, unfinished=True).video_ids) < set(_everything), exc
            return UNFINISHED
        assert "does not exist" in str(exc), exc
        return None
    return set(engine.video_ids)


_everything: set[str] = set()


def assert_same_index(a: Path, b: Path) -> None:
    ea, eb = SearchEngine.load(a), SearchEngine.load(b)
    ids = sorted(ea.video_ids)
    assert ids == sorted(eb.video_ids)
    np.testing.assert_allclose(ea.store.get_vectors(ids), eb.store.get_vectors(ids), atol=1e-6)
    assert [ea.video_info(v) for v in ids] == [eb.video_info(v) for v in ids]


def assert_no_leftovers(index: Path) -> None:
    assert sorted(p.name for p in index.parent.iterdir()) == [index.name], "temporary folders are left"


@pytest.fixture
def embedder_dir(tmp_path: Path, mini_embedder: MiniEmbedder) -> Path:
    mini_embedder.save_pretrained(tmp_path / "embedder")
    return tmp_path / "embedder"


def test_index_build_survives_kills(small_world: Path, embedder_dir: Path, tmp_path: Path, kill_rounds: int) -> None:
    videos = small_world / "videos" / "test"
    everything = {p.stem for p in videos.glob("*.mp4")}
    _everything.clear()
    _everything.update(everything)
    reference = tmp_path / "reference" / "index"
    reference.parent.mkdir()
    spans_s = measured_run(reference.parent, "index", "build", "--videos", videos, "--embedder", embedder_dir,
                           "--out", reference, "--save-every", 4, "--workers", 0)
    index = tmp_path / "killed" / "index"
    index.parent.mkdir()
    build = ("index", "build", "--videos", videos, "--embedder", embedder_dir, "--out", index, "--save-every", 4,
             "--workers", 0)
    for _ in kill_at_random_points(index, spans_s, kill_rounds, 7, *build):
        # nothing, a marked unfinished build (which the next run resumes), or all: never an unmarked partial index
        assert load_ids(index) in (None, UNFINISHED, everything)
    run_videosearch(*build)
    assert load_ids(index) == everything
    assert_no_leftovers(index)
    assert_same_index(index, reference)


def test_index_add_survives_kills(small_world: Path, embedder_dir: Path, tmp_path: Path, kill_rounds: int,
                                  mini_embedder: MiniEmbedder) -> None:
    base, _ = SearchEngine.build(small_world / "videos" / "test", mini_embedder)
    old = set(base.video_ids)
    new = small_world / "videos" / "val"
    everything = old | {p.stem for p in new.glob("*.mp4")}
    reference = tmp_path / "reference" / "index"
    base.save(reference)
    index = tmp_path / "killed" / "index"
    shutil.copytree(reference, index)
    spans_s = measured_run(reference.parent, "index", "add", reference, "--videos", new)
    for _ in kill_at_random_points(index, spans_s, kill_rounds, 11, "index", "add", index, "--videos", new):
        assert load_ids(index) in (old, everything)  # the old videos are always there, the new ones all or none
    run_videosearch("index", "add", index, "--videos", new)
    assert load_ids(index) == everything
    assert_no_leftovers(index)
    assert_same_index(index, reference)
