"""A small instance of the reference release's prepared-data layout, made from the synthetic world."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import faiss
import numpy as np

from videosearch.corpus.annotations import read_moments
from videosearch.corpus.video import list_videos, read_frames
from videosearch.embed import Embedder


def write_release_layout(world: Path, out: Path, embedder: Embedder, seed: int = 0) -> Path:
    """The world's test split as the release lays it out: rows in shuffled order (its build was sharded), the first
    video's frames spread every 2 s (a long video subsampled), the second's with an even-pad duplicate."""
    rng = np.random.default_rng(seed)
    split = out / "test"
    for folder in ("raw_annotation", "test/query_embedding", "test/video_embedding_1fps", "test/video_npy_with_meta",
                   "test/index"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(world / "test.jsonl", out / "raw_annotation" / "test.jsonl")
    paths = list_videos(world / "videos" / "test")
    decoded = [read_frames(p, embedder.fps, embedder.max_frames) for p in paths]
    vectors = np.stack([e.vector for e in embedder.embed_video(decoded)])
    order = rng.permutation(len(paths))
    np.save(split / "video_embedding_1fps" / "segment_embeds.npy", vectors[order] * 3.0)  # consumers re-normalise
    ids = [paths[i].stem for i in order]
    (split / "video_embedding_1fps" / "docid2row.json").write_text(json.dumps({v: r for r, v in enumerate(ids)}))
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors[order], dtype=np.float32))
    faiss.write_index(index, str(split / "index" / "index.faiss"))
    (split / "index" / "id_map.json").write_text(json.dumps(ids))
    meta = []
    for number, video in enumerate(decoded):
        frames, times = video.frames, video.timestamps_s
        pad = False
        if number == 0:
            frames, times = frames[::2], times[::2]
        if number == 1 and len(frames) % 2:
            frames, pad = np.concatenate([frames, frames[-1:]]), True
        np.save(split / "video_npy_with_meta" / f"{video.video_id}.npy", frames)
        meta.append({"video_id": video.video_id, "sampled_timestamps_sec": times.tolist(),
                     "source_duration_sec": video.duration_s, "even_pad_applied": pad,
                     "output_num_frames": len(frames)})
    (split / "video_npy_with_meta" / "meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    moments = read_moments(world / "test.jsonl").moments
    np.save(split / "query_embedding" / "query_embeddings.test.npy", embedder.embed_text([m.query for m in moments]))
    (split / "query_embedding" / "query_meta.test.jsonl").write_text("".join(
        json.dumps({"qid": f"{m.qid}_fig", "query": m.query, "pos_doc_id": m.video_id, "weight": 1.0}) + "\n"
        for m in moments))
    return out
