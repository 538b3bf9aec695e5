"""A CLIP-family index over the world's videos, built and searched through the CLI and the HTTP server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from videosearch.embed import ClipEmbedder
from videosearch.embed.clip import save_random_clip
from videosearch.engine import SearchEngine
from videosearch.engine.client import SearchClient
from videosearch.engine.server import create_app


def test_a_clip_index_is_built_and_searched_by_cli_and_http(small_world: Path, tmp_path: Path, run_cli: Callable,
                                                            loopback: Callable) -> None:
    torch.manual_seed(0)
    checkpoint = save_random_clip(tmp_path / "clip", "clip")
    videos = small_world / "videos" / "test"
    code, out, err = run_cli("index", "build", "--videos", videos, "--out", tmp_path / "index",
                             "--embedder", checkpoint)
    assert code == 0, err
    n_videos = len(list(videos.iterdir()))
    assert f"indexed {n_videos} videos" in out
    query = json.loads((small_world / "test.jsonl").read_text().splitlines()[0])["fig_desc"]
    code, out, err = run_cli("search", tmp_path / "index", query, "-k", "3", "--json")
    assert code == 0, err
    cli_hits = [json.loads(line) for line in out.splitlines()]
    engine = SearchEngine.load(tmp_path / "index")
    assert isinstance(engine.embedder, ClipEmbedder) and len(engine) == n_videos
    with loopback(create_app(engine)) as url:
        http_hits = SearchClient(url).search(query, k=3)
    assert [h["video_id"] for h in cli_hits] == [h.video_id for h in http_hits]
    for cli_hit, http_hit in zip(cli_hits, http_hits):
        assert abs(cli_hit["score"] - http_hit.score) < 1e-4
        assert 0 <= http_hit.start_s < http_hit.end_s
