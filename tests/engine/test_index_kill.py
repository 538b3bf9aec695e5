"""`index build` and `index add` killed with SIGKILL at random moments, then resumed: after every kill the index
folder loads and holds exactly the videos it should, and the finished index equals an uninterrupted run's.

Each round reruns the command (the resume) and kills it again; a last rerun finishes. A kill exactly between the
two renames of a save is a window of microseconds: tests/engine/test_engine_persistence.py stops a save there.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from killing import kill_videosearch_after, run_videosearch

from videosearch.embed import MiniEmbedder
from videosearch.engine import SearchEngine
from videosearch.errors import VideosearchError

pytestmark = pytest.mark.kill


def timed_run(*args: object) -> float:
    start = time.monotonic()
    run_videosearch(*args)
    return time.monotonic() - start


def kill_delays(duration_s: float, rounds: int, seed: int) -> list[float]:
    """One delay per round, each drawn from its own slice of the run: early ones fall in start-up, late ones in
    the decoding, embedding and saving."""
    rng = random.Random(seed)
    return [duration_s * rng.uniform(i / rounds, (i + 1) / rounds) for i in range(rounds)]


def load_ids(index: Path) -> set[str] | None:
    """The ids of the index at `index`, or None when there is none (every other failure fails the test)."""
    try:
        engine = SearchEngine.load(index)
    except VideosearchError as exc:
        assert "does not exist" in str(exc), exc
        return None
    return set(engine.video_ids)


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
    reference = tmp_path / "reference" / "index"
    duration_s = timed_run("index", "build", "--videos", videos, "--embedder", embedder_dir, "--out", reference)
    index = tmp_path / "killed" / "index"
    index.parent.mkdir()
    for delay in kill_delays(duration_s, kill_rounds, seed=7):
        kill_videosearch_after(delay, "index", "build", "--videos", videos, "--embedder", embedder_dir, "--out", index)
        assert load_ids(index) in (None, everything)  # all or nothing: never a partial index
    run_videosearch("index", "build", "--videos", videos, "--embedder", embedder_dir, "--out", index)
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
    duration_s = timed_run("index", "add", reference, "--videos", new)
    for delay in kill_delays(duration_s, kill_rounds, seed=11):
        kill_videosearch_after(delay, "index", "add", index, "--videos", new)
        assert load_ids(index) in (old, everything)  # the old videos are always there, the new ones all or none
    run_videosearch("index", "add", index, "--videos", new)
    assert load_ids(index) == everything
    assert_no_leftovers(index)
    assert_same_index(index, reference)
