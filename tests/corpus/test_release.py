"""The reference release's prepared data read in place: vectors by docid2row, frames with their true times."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from release_layout import write_release_layout

from videosearch.corpus.annotations import read_moments
from videosearch.corpus.release import ReleaseSplit, read_query_vectors, read_video_vectors
from videosearch.corpus.video import read_frames
from videosearch.embed import MiniEmbedder
from videosearch.errors import ConfigError, VideoReadError


@pytest.fixture(scope="module")
def _release(small_world: Path, _mini_embedder: MiniEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_release_layout(small_world, tmp_path_factory.mktemp("release"), _mini_embedder)


@pytest.fixture
def release(_release: Path, tmp_path: Path) -> Path:
    """A private copy of the small release layout (tests may damage it)."""
    return Path(shutil.copytree(_release, tmp_path / "release"))


def test_video_vectors_follow_docid2row_and_are_normalised(release: Path, small_world: Path,
                                                           _mini_embedder: MiniEmbedder) -> None:
    ids, vectors = read_video_vectors(ReleaseSplit(release, "test"))
    assert sorted(ids) == sorted(p.stem for p in (small_world / "videos" / "test").iterdir())
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    first = read_frames(small_world / "videos" / "test" / f"{ids[0]}.mp4", 1.0, _mini_embedder.max_frames)
    np.testing.assert_allclose(vectors[0], _mini_embedder.embed_video([first])[0].vector, atol=1e-5)


def test_query_vectors_by_text(release: Path, small_world: Path) -> None:
    vectors = read_query_vectors(ReleaseSplit(release, "test"))
    assert set(vectors) == {m.query for m in read_moments(small_world / "test.jsonl").moments}


def test_frames_keep_the_times_of_their_meta(release: Path) -> None:
    folder = release / "test" / "video_npy_with_meta"
    meta = [json.loads(line) for line in (folder / "meta.jsonl").read_text().splitlines()]
    spread, padded = meta[0], meta[1]
    video = read_frames(folder / f"{spread['video_id']}.npy", fps=1.0)
    np.testing.assert_allclose(video.timestamps_s, spread["sampled_timestamps_sec"])  # every 2 s, never 1 fps
    assert np.diff(video.timestamps_s).min() >= 1.9 and video.duration_s == spread["source_duration_sec"]
    video = read_frames(folder / f"{padded['video_id']}.npy", fps=1.0)
    if padded["even_pad_applied"]:  # the duplicated frame is not a new moment: read once
        assert len(video) == padded["output_num_frames"] - 1
    np.testing.assert_allclose(video.timestamps_s, padded["sampled_timestamps_sec"][: len(video)])
    few = read_frames(folder / f"{padded['video_id']}.npy", fps=1.0, max_frames=3, size=(16, 24))
    assert few.frames.shape == (3, 16, 24, 3) and few.timestamps_s[0] == 0.0
    slow = read_frames(folder / f"{padded['video_id']}.npy", fps=0.25)
    assert np.diff(slow.timestamps_s).min() >= 3.9


def test_an_inconsistent_layout_is_a_clear_error(release: Path) -> None:
    split = ReleaseSplit(release, "test")
    (split.faiss_index.parent / "id_map.json").write_text(json.dumps(["x"]))
    with pytest.raises(ConfigError, match="does not hold the rows"):
        read_video_vectors(split)
    split.faiss_index.unlink()
    rows = json.loads(split.docid2row.read_text())
    split.docid2row.write_text(json.dumps({**rows, "extra": len(rows)}))
    with pytest.raises(ConfigError, match="rows must be 0.."):
        read_video_vectors(split)
    split.docid2row.unlink()
    with pytest.raises(ConfigError, match="lacks parts of the release's layout.*docid2row.json"):
        read_video_vectors(split)
    with pytest.raises(ConfigError, match="is not a folder"):
        ReleaseSplit(release / "nope", "test").check()
    meta = split.query_meta.read_text().splitlines()
    split.query_meta.write_text("\n".join(meta[:-1]) + "\n")
    with pytest.raises(ConfigError, match="must match line for row"):
        read_query_vectors(split)


def test_bad_frame_arrays_are_clear_errors(release: Path) -> None:
    folder = release / "test" / "video_npy_with_meta"
    meta = [json.loads(line) for line in (folder / "meta.jsonl").read_text().splitlines()]
    first = folder / f"{meta[0]['video_id']}.npy"
    meta[0]["sampled_timestamps_sec"] = meta[0]["sampled_timestamps_sec"][:-2]
    (folder / "meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta[:-1]))
    with pytest.raises(VideoReadError, match="timestamps for"):
        read_frames(first)
    with pytest.raises(VideoReadError, match="has no row for video"):
        read_frames(folder / f"{meta[-1]['video_id']}.npy")
    np.save(first, np.zeros((3, 4, 4), np.float32))
    with pytest.raises(VideoReadError, match="uint8"):
        read_frames(first)
    (folder / "meta.jsonl").unlink()
    with pytest.raises(VideoReadError, match="no meta.jsonl beside it"):
        read_frames(first)


def test_import_search_and_eval_end_to_end(release: Path, run_cli: Callable, tmp_path: Path) -> None:
    code, out, err = run_cli("index", "import-release", release, "--out", tmp_path / "index")
    assert code == 0, err
    annotations = release / "raw_annotation" / "test.jsonl"
    code, out, err = run_cli("baseline", "run", tmp_path / "index", "--annotations", annotations,
                             "--out", tmp_path / "search.jsonl")
    assert code == 0, err
    split = ReleaseSplit(release, "test")
    ids, videos = read_video_vectors(split)
    queries = read_query_vectors(split)
    for line in (tmp_path / "search.jsonl").read_text().splitlines():  # the stored vectors decide the ranking
        record = json.loads(line)
        assert record["ranking"][0] == ids[int(np.argmax(videos @ queries[record["query"]]))]
    code, out, err = run_cli("eval", "--pred", tmp_path / "search.jsonl", "--annotations", annotations)
    assert code == 0, err and "VR" in out
    code, out, err = run_cli("search", tmp_path / "index", "a query the release never embedded")
    assert code == 2 and "no stored vector for the query" in err and "--embedder" in err
