from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from videosearch.embed import MiniEmbedder
from videosearch.engine import SearchEngine
from videosearch.errors import IndexMismatchError, VideosearchError


def test_build_skips_unreadable_files_and_names_them(small_world: Path, mini_embedder: MiniEmbedder,
                                                      tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    shutil.copytree(small_world / "videos" / "val", folder)
    (folder / "notes.mp4").write_text("not a video")
    (folder / "empty.mp4").write_bytes(b"")
    engine, result = SearchEngine.build(folder, mini_embedder)
    skipped = result.skipped
    assert len(engine) == len(list((small_world / "videos" / "val").glob("*.mp4")))
    assert sorted(Path(s.path).name for s in skipped) == ["empty.mp4", "notes.mp4"]
    assert all(s.reason for s in skipped)


def test_decoding_workers_build_the_same_index_and_the_speed_is_reported(small_world: Path,
                                                                         mini_embedder: MiniEmbedder,
                                                                         tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    shutil.copytree(small_world / "videos" / "val", folder)
    (folder / "notes.mp4").write_text("not a video")
    alone, one = SearchEngine.build(folder, mini_embedder, batch_size=3)
    pooled, two = SearchEngine.build(folder, mini_embedder, batch_size=3, workers=2)
    ids = sorted(alone.video_ids)
    assert sorted(pooled.video_ids) == ids and [s.path for s in two.skipped] == [s.path for s in one.skipped]
    assert two.skipped[0].reason == one.skipped[0].reason  # the reason crosses the process boundary intact
    np.testing.assert_allclose(pooled.store.get_vectors(ids), alone.store.get_vectors(ids), atol=1e-6)
    assert [pooled.video_info(v)["segments"] for v in ids] == [alone.video_info(v)["segments"] for v in ids]
    assert two.frames == one.frames > 0
    assert f"{len(ids)} videos, {two.frames} frames in" in two.throughput() and "videos/s" in two.throughput()


def test_build_of_a_folder_without_videos_is_a_clear_error(tmp_path: Path, mini_embedder: MiniEmbedder) -> None:
    (tmp_path / "bad.mp4").write_text("x")
    with pytest.raises(VideosearchError, match="no readable video"):
        SearchEngine.build(tmp_path, mini_embedder)


def test_search_returns_ranked_hits_with_spans_inside_the_video(engine: SearchEngine) -> None:
    hits = engine.search("In the garden, the small red circle moves to the left.", k=5)
    assert len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        duration = engine.video_info(hit.video_id)["duration_s"]
        assert 0 <= hit.start_s < hit.end_s <= duration + 1e-6


def test_text_vector_and_latent_queries_agree(engine: SearchEngine) -> None:
    query = "the big blue square jumps up and down in the kitchen"
    by_text = engine.search(query, k=4)
    by_vector = engine.search(engine.encode_queries([query])[0], k=4)
    assert [h.video_id for h in by_text] == [h.video_id for h in by_vector]
    latents = torch.zeros(8, engine.embedder.latent_dim)
    with_latents = engine.search(query, k=4, latents=latents)
    assert len(with_latents) == 4


def test_exclude_removes_ids_and_still_fills_k(engine: SearchEngine) -> None:
    query = "a circle moves"
    first = engine.search(query, k=3)
    excluded = {first[0].video_id, first[1].video_id}
    hits = engine.search(query, k=3, exclude=excluded)
    assert len(hits) == 3 and not excluded & {h.video_id for h in hits}


def test_bad_queries_are_clear_errors(engine: SearchEngine) -> None:
    with pytest.raises(VideosearchError, match="k must be"):
        engine.search("x", k=0)
    with pytest.raises(VideosearchError, match="384-d"):
        engine.search(np.ones(7, np.float32), k=1)


def test_save_load_round_trip(engine: SearchEngine, tmp_path: Path) -> None:
    engine.save(tmp_path / "index")
    loaded = SearchEngine.load(tmp_path / "index")
    query = "the yellow triangle shrinks in the desert"
    assert [(h.video_id, h.start_s) for h in loaded.search(query, k=5)] == [
        (h.video_id, h.start_s) for h in engine.search(query, k=5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"], "no temporary folder is left behind"


def test_add_videos_without_rebuild(engine: SearchEngine, small_world: Path, tmp_path: Path) -> None:
    before = len(engine)
    new = sorted((small_world / "videos" / "val").glob("*.mp4"))[:2]
    result = engine.add_videos(new)
    assert (result.added, result.replaced, result.skipped) == ([p.stem for p in new], [], [])
    assert len(engine) == before + 2
    assert engine.search(engine.store.get_vectors([new[0].stem])[0], k=1)[0].video_id == new[0].stem
    engine.save(tmp_path / "index")
    assert len(SearchEngine.load(tmp_path / "index")) == before + 2


def test_loading_with_another_embedder_is_refused(engine: SearchEngine, tmp_path: Path) -> None:
    engine.save(tmp_path / "index")
    torch.manual_seed(123)
    other = MiniEmbedder()
    with pytest.raises(IndexMismatchError, match="rebuild"):
        SearchEngine.load(tmp_path / "index", embedder=other)


def test_loading_an_incomplete_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "index").mkdir()
    with pytest.raises(VideosearchError, match="engine.json"):
        SearchEngine.load(tmp_path / "index")
