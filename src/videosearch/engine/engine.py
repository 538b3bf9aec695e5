"""The video search engine: query (text, vector, or text + latents) -> ranked videos with their best segment.

    engine = SearchEngine.build("videos/", load_embedder("runs/retriever"))
    engine.save("runs/index")
    engine = SearchEngine.load("runs/index")
    hits = engine.search("the red circle moves left after the square grows", k=5)

An index folder holds `engine.json` (written last), `embedder/` (a copy of the embedder, so the index
alone answers text queries), `store/` (the video vectors in a `VectorStore`) and `segments.npz`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from videosearch.corpus.video import list_videos, read_frames
from videosearch.embed import Embedder, VideoEmbedding, load_embedder
from videosearch.errors import IndexMismatchError, VideoReadError, VideosearchError
from videosearch.index import IndexConfig, VectorStore, create_store, open_store
from videosearch.progress import progress as progress_bar

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1
MAX_K = 1000


@dataclass(frozen=True)
class Hit:
    """One retrieved video: its score and the segment of it that fits the query best (seconds)."""

    video_id: str
    score: float
    start_s: float
    end_s: float
    segment_score: float


@dataclass(frozen=True)
class SkippedVideo:
    """A file that could not be indexed, and why."""

    path: str
    reason: str


@dataclass
class _Segments:
    vectors: np.ndarray  # (S, D) float32
    spans_s: np.ndarray  # (S, 2) float32
    duration_s: float
    path: str


class SearchEngine:
    """Embeds queries, searches the vector store, and picks each hit's best segment."""

    def __init__(self, embedder: Embedder, store: VectorStore, segments: dict[str, _Segments] | None = None) -> None:
        if store.dim != embedder.dim or store.model_id != embedder.model_id:
            raise VideosearchError(f"the store holds vectors of {store.model_id} ({store.dim}-d) but the embedder is "
                                   f"{embedder.model_id} ({embedder.dim}-d): rebuild the index with this embedder")
        self.embedder = embedder
        self.store = store
        self.segments: dict[str, _Segments] = segments or {}
        self._lock = threading.Lock()

    # ---- building -------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, videos_dir: str | Path, embedder: Embedder, config: IndexConfig | None = None,
              batch_size: int = 16) -> tuple[SearchEngine, list[SkippedVideo]]:
        """Decode, embed and index every video file of a folder; unreadable files are skipped and returned."""
        engine = cls(embedder, create_store(config or IndexConfig(), embedder.dim, embedder.model_id))
        skipped = engine.add_videos(list_videos(videos_dir), batch_size)
        if not len(engine.store):
            raise VideosearchError(f"no readable video in {videos_dir} ({len(skipped)} skipped): nothing to index")
        return engine, skipped

    def add_videos(self, paths: list[Path], batch_size: int = 16) -> list[SkippedVideo]:
        """Embed and add videos (an id already indexed is replaced); returns the files skipped, with reasons."""
        skipped: list[SkippedVideo] = []
        side = self.embedder.frame_size
        frame_size = (side, side) if side else None
        with progress_bar() as progress:
            task = progress.add_task("indexing videos", total=len(paths))
            for start in range(0, len(paths), batch_size):
                decoded = []
                for path in paths[start: start + batch_size]:
                    try:
                        decoded.append(read_frames(path, self.embedder.fps, self.embedder.max_frames, frame_size))
                    except VideoReadError as exc:
                        skipped.append(SkippedVideo(str(path), exc.reason))
                        logger.warning("skipping %s: %s", path, exc.reason)
                    progress.advance(task)
                if not decoded:
                    continue
                embeddings = self.embedder.embed_video(decoded)
                paths_by_id = {Path(p).stem: str(Path(p).resolve()) for p in paths[start: start + batch_size]}
                self._add_embeddings([v.video_id for v in decoded], embeddings, paths_by_id)
        return skipped

    def _add_embeddings(self, ids: list[str], embeddings: list[VideoEmbedding], paths: dict[str, str]) -> None:
        with self._lock:
            self.store.add(ids, np.stack([e.vector for e in embeddings]))
            for vid, e in zip(ids, embeddings):
                self.segments[vid] = _Segments(e.segment_vectors, e.segment_spans_s, e.duration_s, paths.get(vid, ""))

    def remove_videos(self, ids: list[str]) -> None:
        with self._lock:
            self.store.remove(ids)
            for vid in ids:
                self.segments.pop(vid, None)

    # ---- searching ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.store)

    @property
    def video_ids(self) -> list[str]:
        return self.store.ids()

    def video_info(self, video_id: str) -> dict:
        """Duration, path and segments of one indexed video; KeyError for an unknown id."""
        seg = self.segments[video_id]
        return {"video_id": video_id, "duration_s": seg.duration_s, "path": seg.path,
                "segments": seg.spans_s.tolist()}

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """float32 (Q, D) unit query vectors."""
        return self.embedder.embed_text(texts)

    def encode_refined(self, texts: list[str], latents: torch.Tensor) -> np.ndarray:
        """Query vectors with latents (B, N, E) inserted into the text encoder's sequence (no gradient)."""
        with torch.no_grad():
            return self.embedder.embed_text_with_latents(texts, latents).float().numpy()

    def search(self, query: str | np.ndarray, k: int = 10, exclude: list[str] | set[str] | None = None,
               latents: torch.Tensor | None = None) -> list[Hit]:
        """Top-k videos for one query: a text, a (D,) vector, or a text with latents (N, E) inserted."""
        if isinstance(query, str):
            if latents is not None:
                vector = self.encode_refined([query], latents[None])
            else:
                vector = self.encode_queries([query])
        else:
            vector = np.asarray(query, np.float32).reshape(1, -1)
        return self.search_by_vector(vector, k, [set(exclude or ())])[0]

    def search_by_vector(self, vectors: np.ndarray, k: int = 10,
                         exclude: list[set[str]] | set[str] | None = None) -> list[list[Hit]]:
        """Top-k videos for each row of `vectors` (Q, D); `exclude` is one id set for all or one per query."""
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.shape[1] != self.embedder.dim:
            raise VideosearchError(f"query vectors must be {self.embedder.dim}-d, got {vectors.shape[1]}-d")
        if not 1 <= k <= MAX_K:
            raise VideosearchError(f"k must be between 1 and {MAX_K} (got {k})")
        with self._lock:
            result = self.store.search(vectors, k, exclude)
        hits = []
        for q, (ids, scores) in enumerate(zip(result.ids, result.scores)):
            hits.append([self._hit(vectors[q], vid, float(score)) for vid, score in zip(ids, scores)])
        return hits

    def _hit(self, vector: np.ndarray, video_id: str, score: float) -> Hit:
        seg = self.segments[video_id]
        seg_scores = seg.vectors @ vector
        best = int(np.argmax(seg_scores))
        return Hit(video_id, score, float(seg.spans_s[best, 0]), float(seg.spans_s[best, 1]), float(seg_scores[best]))

    # ---- persistence ----------------------------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> None:
        """Write the index folder atomically: a temporary sibling folder, then a rename."""
        out = Path(out_dir)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.embedder.save_pretrained(tmp / "embedder")
        self.store.save(tmp / "store")
        ids = sorted(self.segments)
        counts = np.array([len(self.segments[v].vectors) for v in ids], np.int64)
        np.savez(tmp / "segments.npz", ids=np.array(ids), counts=counts,
                 vectors=np.concatenate([self.segments[v].vectors for v in ids]),
                 spans_s=np.concatenate([self.segments[v].spans_s for v in ids]),
                 durations_s=np.array([self.segments[v].duration_s for v in ids]),
                 paths=np.array([self.segments[v].path for v in ids]))
        manifest = {"format_version": FORMAT_VERSION, "model_id": self.embedder.model_id, "dim": self.embedder.dim,
                    "videos": len(ids)}
        (tmp / "engine.json").write_text(json.dumps(manifest, indent=2))
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None) -> SearchEngine:
        """Open an index folder; `embedder` overrides the saved copy (it must be the same model)."""
        folder = Path(path)
        manifest_path = folder / "engine.json"
        if not manifest_path.exists():
            raise VideosearchError(f"{folder} is not a complete index (no engine.json): build it with "
                                   "`videosearch index build`")
        manifest = json.loads(manifest_path.read_text())
        embedder = embedder or load_embedder(folder / "embedder")
        store = open_store(folder / "store", expected_model_id=manifest["model_id"], expected_dim=manifest["dim"])
        if embedder.model_id != manifest["model_id"]:
            raise IndexMismatchError(f"{folder} was built with embedder {manifest['model_id']} but "
                                     f"{embedder.model_id} was given: rebuild the index or use the matching embedder")
        with np.load(folder / "segments.npz") as npz:
            data = {name: npz[name] for name in npz.files}  # each npz[name] access re-reads the zip member
        offsets = np.concatenate([[0], np.cumsum(data["counts"])])
        segments = {str(vid): _Segments(data["vectors"][a:b], data["spans_s"][a:b], float(d), str(p))
                    for vid, a, b, d, p in zip(data["ids"], offsets[:-1], offsets[1:], data["durations_s"],
                                               data["paths"])}
        return cls(embedder, store, segments)
