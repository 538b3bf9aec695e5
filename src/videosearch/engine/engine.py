"""The video search engine: query (text, vector, or text + latents) -> ranked videos with their best segment.

    engine = SearchEngine.build("videos/", load_embedder("runs/retriever"))
    engine.save("runs/index")
    engine = SearchEngine.load("runs/index")
    hits = engine.search("the red circle moves left after the square grows", k=5)

An index folder holds `engine.json` (written last), `embedder/` (a copy of the embedder, so the index
alone answers text queries), `store/` (the video vectors in a `VectorStore`) and `segments.npz`. `save` writes
it into a fsynced sibling and swaps it in by rename (`videosearch.folders`); it only ever replaces a folder that
is missing, empty or an index, and `load` restores an index that a killed save left set aside.

A video's id is its file name without the extension, as annotation files name videos. Files whose id is not
usable (a control character, not UTF-8, shared by two files of the batch, already indexed from another file)
are skipped with the reason; nothing is ever replaced silently.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import threading
import time
import zipfile
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from videosearch.corpus.types import VideoFrames
from videosearch.corpus.video import list_videos, read_frames
from videosearch.embed import Embedder, VideoEmbedding, load_embedder
from videosearch.errors import IndexMismatchError, VideoReadError, VideosearchError
from videosearch.folders import (
    aside_copies,
    check_replaceable,
    publish_folder,
    recover_swap,
    saves_in_progress,
)
from videosearch.index import IndexConfig, VectorStore, create_store, open_store
from videosearch.index.base import id_problem
from videosearch.progress import progress as progress_bar

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1
MAX_K = 1000
MANIFEST = "engine.json"
SEGMENTS = "segments.npz"


class IndexFileError(VideosearchError):
    """A file of an index folder is missing or corrupt; names the file."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}; rebuild the index with `videosearch index build`")


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
    """A file that could not be indexed, and why (`path` printable: odd bytes and control characters escaped)."""

    path: str
    reason: str


@dataclass
class AddResult:
    """What `add_videos` did: ids newly added, ids whose indexed video was replaced, files skipped; and its speed."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    skipped: list[SkippedVideo] = field(default_factory=list)
    frames: int = 0  # frames embedded
    seconds: float = 0.0  # wall time, decoding and embedding

    def extend(self, other: AddResult) -> None:
        """Add what a later `add_videos` call did."""
        self.added += other.added
        self.replaced += other.replaced
        self.skipped += other.skipped
        self.frames += other.frames
        self.seconds += other.seconds

    def throughput(self) -> str:
        """'N videos, F frames in S s: x videos/s, y frames/s'."""
        videos, seconds = len(self.added) + len(self.replaced), max(self.seconds, 1e-9)
        return (f"{videos} videos, {self.frames} frames in {self.seconds:.1f} s: {videos / seconds:.2f} videos/s, "
                f"{self.frames / seconds:.1f} frames/s")


def _decode(path: Path, fps: float, max_frames: int, size: tuple[int, int] | None) -> VideoFrames | str:
    """One video's frames, or why it cannot be read (a string: it crosses process boundaries as is)."""
    try:
        return read_frames(path, fps, max_frames, size)
    except VideoReadError as exc:
        return exc.reason


def decoded_videos(paths: list[Path], fps: float, max_frames: int, size: tuple[int, int] | None,
                   workers: int = 0, ahead: int = 2) -> Iterator[tuple[Path, VideoFrames | str]]:
    """(path, frames or the reason it cannot be read), in order; with `workers`, decoded in that many processes
    while the caller works, at most `ahead` videos ahead of it (memory stays bounded)."""
    if workers <= 0:
        for path in paths:
            yield path, _decode(path, fps, max_frames, size)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[tuple[Path, Future]] = deque()
        queue = iter(paths)
        for path in itertools.islice(queue, max(ahead, workers)):
            pending.append((path, pool.submit(_decode, path, fps, max_frames, size)))
        while pending:
            path, done = pending.popleft()
            for following in itertools.islice(queue, 1):
                pending.append((following, pool.submit(_decode, following, fps, max_frames, size)))
            yield path, done.result()


@dataclass
class _Segments:
    vectors: np.ndarray  # (S, D) float32
    spans_s: np.ndarray  # (S, 2) float32
    duration_s: float
    path: str


def printable_path(path: str | os.PathLike[str]) -> str:
    """The path as one printable line: bytes that are not UTF-8 and control characters escaped."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _name_problem(path: Path) -> str | None:
    """Why a file's name cannot give a video id, or None."""
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        return "the file name is not valid UTF-8: rename the file"
    if any(not ch.isprintable() and ch != " " for ch in path.name):
        return "the file name contains a control or invisible character (e.g. a newline): rename the file"
    problem = id_problem(path.stem)
    return f"{problem}: rename the file" if problem else None


def assign_ids(paths: list[Path], indexed: dict[str, str] | None = None,
               replace: bool = False) -> tuple[list[tuple[str, Path]], list[SkippedVideo]]:
    """Check every file's id (its name without the extension) before any decoding.

    Two files with one id are both skipped, since which one is meant is unknown; an id already indexed
    (`indexed`: id -> resolved path) from another file is skipped unless `replace`; the same file is re-indexed.

    Returns:
        The (id, path) pairs to index, in input order, and the files skipped with the reason.
    """
    indexed = indexed or {}
    by_id: dict[str, list[Path]] = defaultdict(list)
    skipped: list[SkippedVideo] = []
    for path in map(Path, paths):
        problem = _name_problem(path)
        if problem:
            skipped.append(SkippedVideo(printable_path(path), problem))
        else:
            by_id[path.stem].append(path)
    accepted = []
    for vid, group in by_id.items():
        if len(group) > 1:
            for path in group:
                others = ", ".join(p.name for p in group if p != path)
                skipped.append(SkippedVideo(printable_path(path), f"its id {vid!r} (the name without extension) is "
                                            f"also the id of {others}: rename one of them"))
            continue
        path = group[0]
        previous = indexed.get(vid)
        if previous is not None and previous != str(path.resolve()) and not replace:
            skipped.append(SkippedVideo(printable_path(path), f"id {vid!r} is already indexed from "
                                        f"{printable_path(previous)}: rename this file, or replace the indexed "
                                        "video on purpose (`videosearch index add --replace`)"))
            continue
        accepted.append((vid, path))
    return accepted, skipped


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
              batch_size: int = 16, workers: int = 0) -> tuple[SearchEngine, AddResult]:
        """Decode (in `workers` processes), embed and index every video file of a folder; what was indexed and
        skipped comes back with the speed."""
        engine = cls(embedder, create_store(config or IndexConfig(), embedder.dim, embedder.model_id))
        result = engine.add_videos(list_videos(videos_dir), batch_size, workers=workers)
        if not len(engine.store):
            raise VideosearchError(f"no readable video in {videos_dir} ({len(result.skipped)} skipped): nothing to "
                                   "index")
        return engine, result

    @classmethod
    def from_vectors(cls, embedder: Embedder, ids: list[str], vectors: np.ndarray, durations_s: list[float],
                     paths: list[str], config: IndexConfig | None = None) -> SearchEngine:
        """An index of videos embedded elsewhere (the release's prepared data): one vector (V, D) per video, which
        is also its one segment, spanning the whole video; `paths` say where each video's frames are."""
        if vectors.shape != (len(ids), embedder.dim):
            raise VideosearchError(f"{len(ids)} ids need {len(ids)} vectors of {embedder.dim} dimensions (the "
                                   f"embedder's), got {vectors.shape}")
        for vid in ids:
            if problem := id_problem(vid):
                raise VideosearchError(f"video id {vid!r}: {problem}")
        engine = cls(embedder, create_store(config or IndexConfig(), embedder.dim, embedder.model_id))
        engine._add_embeddings(ids, [VideoEmbedding(v, v[None], np.array([[0.0, d]], np.float32), float(d))
                                     for v, d in zip(vectors.astype(np.float32), durations_s)], paths)
        return engine

    def add_videos(self, paths: list[Path], batch_size: int = 16, replace: bool = False,
                   workers: int = 0) -> AddResult:
        """Embed and add video files, each under its id (see `assign_ids`); `replace` lets a file replace a video
        indexed from another file under the same id; `workers` processes decode while the embedder runs. Returns
        the ids added and replaced, the files skipped, and the frames embedded and the time taken."""
        began = time.perf_counter()
        indexed = {vid: seg.path for vid, seg in self.segments.items()}
        accepted, skipped = assign_ids(list(paths), indexed, replace)
        result = AddResult(skipped=skipped)
        side = self.embedder.frame_size
        ids_of = {path: vid for vid, path in accepted}
        # the next batch decodes while this one is embedded
        stream = decoded_videos([path for _, path in accepted], self.embedder.fps, self.embedder.max_frames,
                                (side, side) if side else None, workers, ahead=batch_size + workers)
        with progress_bar() as progress:
            task = progress.add_task("indexing videos", total=len(accepted))
            while batch := list(itertools.islice(stream, batch_size)):
                ids, decoded, files = [], [], []
                for path, frames in batch:
                    if isinstance(frames, str):
                        result.skipped.append(SkippedVideo(printable_path(path), frames))
                        logger.warning("skipping %s: %s", printable_path(path), frames)
                    else:
                        ids.append(ids_of[path])
                        decoded.append(frames)
                        files.append(str(path.resolve()))
                if decoded:
                    embeddings = self.embedder.embed_video(decoded)
                    for vid in ids:
                        (result.replaced if vid in self.segments else result.added).append(vid)
                    self._add_embeddings(ids, embeddings, files)
                    result.frames += sum(len(v) for v in decoded)
                progress.advance(task, len(batch))
        result.seconds = time.perf_counter() - began
        return result

    def _add_embeddings(self, ids: list[str], embeddings: list[VideoEmbedding], paths: list[str]) -> None:
        with self._lock:
            self.store.add(ids, np.stack([e.vector for e in embeddings]))
            for vid, e, path in zip(ids, embeddings, paths):
                self.segments[vid] = _Segments(e.segment_vectors, e.segment_spans_s, e.duration_s, path)

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
            return self.embedder.embed_text_with_latents(texts, latents).float().cpu().numpy()

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

    @classmethod
    def build_into(cls, out_dir: str | Path, videos_dir: str | Path, embedder: Embedder,
                   config: IndexConfig | None = None, batch_size: int = 16, workers: int = 0,
                   save_every: int = 500) -> tuple[SearchEngine, AddResult]:
        """`build`, saving the index into `out_dir` every `save_every` videos, marked unfinished until the last
        save. Run again after a kill, it resumes that unfinished build: the files it indexed are skipped."""
        out = Path(out_dir)
        check_index_out(out)
        engine = cls._unfinished(out, embedder) or cls(embedder, create_store(config or IndexConfig(), embedder.dim,
                                                                               embedder.model_id))
        done = {seg.path for seg in engine.segments.values()}
        todo = [p for p in list_videos(videos_dir) if str(p.resolve()) not in done]
        total = AddResult()
        for start in range(0, len(todo), save_every):
            total.extend(engine.add_videos(todo[start: start + save_every], batch_size, workers=workers))
            if start + save_every < len(todo) and len(engine.store):
                engine.save(out, finished=False)
        if not len(engine.store):
            raise VideosearchError(f"no readable video in {videos_dir} ({len(total.skipped)} skipped): nothing to "
                                   "index")
        engine.save(out)
        return engine, total

    @classmethod
    def _unfinished(cls, out: Path, embedder: Embedder) -> SearchEngine | None:
        """The unfinished build saved in `out`, when there is one; it must be of `embedder`'s model."""
        if not (out / MANIFEST).is_file() or _read_manifest(out).get("finished", True):
            return None
        engine = cls.load(out, unfinished=True)
        if engine.embedder.model_id != embedder.model_id:
            raise VideosearchError(f"{out} holds an unfinished build with embedder {engine.embedder.model_id}, not "
                                   f"{embedder.model_id}: finish it with that embedder, or give another --out")
        logger.info("resuming the unfinished build in %s (%d videos indexed)", out, len(engine))
        return engine

    # ---- persistence ----------------------------------------------------------------------------------------
    def save(self, out_dir: str | Path, finished: bool = True) -> None:
        """Write the index folder: a fsynced temporary sibling swapped in by rename (see `check_index_out`);
        `finished=False` marks a build still under way, which `load` refuses."""
        out = Path(out_dir)
        check_index_out(out)
        publish_folder(out, lambda folder: self._write(folder, finished))

    def _write(self, folder: Path, finished: bool = True) -> None:
        self.embedder.save_pretrained(folder / "embedder")
        self.store.save(folder / "store")
        ids = sorted(self.segments)
        counts = np.array([len(self.segments[v].vectors) for v in ids], np.int64)
        dim = self.embedder.dim
        np.savez(folder / SEGMENTS, ids=np.array(ids, dtype=str), counts=counts,
                 vectors=np.concatenate([self.segments[v].vectors for v in ids] or [np.zeros((0, dim), np.float32)]),
                 spans_s=np.concatenate([self.segments[v].spans_s for v in ids] or [np.zeros((0, 2), np.float32)]),
                 durations_s=np.array([self.segments[v].duration_s for v in ids], np.float64),
                 paths=np.array([self.segments[v].path for v in ids], dtype=str))
        manifest = {"format_version": FORMAT_VERSION, "model_id": self.embedder.model_id, "dim": dim,
                    "videos": len(ids), "finished": finished}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None, unfinished: bool = False) -> SearchEngine:
        """Open an index folder; `embedder` overrides the saved copy (it must be the same model). A build that was
        killed before it finished is refused unless `unfinished`."""
        folder = Path(path)
        manifest = _read_manifest(folder)
        if not manifest.get("finished", True) and not unfinished:
            raise VideosearchError(f"{folder} is an index build that stopped after {manifest.get('videos')} videos: "
                                   "run the same `videosearch index build` again to finish it")
        if embedder is None:
            embedder = _load_saved_embedder(folder / "embedder")
        store = open_store(folder / "store", expected_model_id=manifest["model_id"], expected_dim=manifest["dim"])
        if embedder.model_id != manifest["model_id"]:
            raise IndexMismatchError(f"{folder} was built with embedder {manifest['model_id']} but "
                                     f"{embedder.model_id} was given: rebuild the index or use the matching embedder")
        segments = _read_segments(folder / SEGMENTS, manifest["dim"])
        if manifest.get("videos", len(segments)) != len(segments):
            raise IndexFileError(folder / MANIFEST, f"it counts {manifest['videos']} videos but {SEGMENTS} holds "
                                 f"{len(segments)}")
        stored = set(store.ids())
        if stored != set(segments):
            odd = sorted(stored ^ set(segments))
            raise IndexFileError(folder / SEGMENTS, f"its video ids differ from those of store/ ({len(odd)} in only "
                                 f"one of them, e.g. {odd[:3]})")
        return cls(embedder, store, segments)


def check_index_out(out: Path) -> None:
    """Refuse an output folder that is not missing, empty or an index, first restoring one a killed save set aside."""
    recover_swap(out, MANIFEST)
    check_replaceable(out, MANIFEST, "video index")


def _read_manifest(folder: Path) -> dict:
    """The checked `engine.json` of an index folder, restoring the folder first if a killed save set it aside."""
    if not folder.exists():
        restored = recover_swap(folder, MANIFEST)
        writers = saves_in_progress(folder)
        if restored is None and writers:
            aside = [str(copy) for copy in aside_copies(folder)] or ["its set-aside copy"]
            raise VideosearchError(f"{folder} is being saved by process {writers[0]} right now: retry when it ends "
                                   f"(if no save runs, rename {aside[0]} to {folder})")
    path = folder / MANIFEST
    if not path.is_file():
        state = "does not exist" if not folder.exists() else f"holds no {MANIFEST}"
        raise VideosearchError(f"{folder} {state}, so it is not an index: build one with `videosearch index build`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFileError(path, f"unreadable ({exc})") from None
    if not isinstance(manifest, dict) or not {"format_version", "model_id", "dim"} <= set(manifest):
        raise IndexFileError(path, "not an index manifest (needs format_version, model_id, dim)")
    if manifest["format_version"] != FORMAT_VERSION:
        raise IndexFileError(path, f"index format {manifest['format_version']!r} is not {FORMAT_VERSION}")
    if not isinstance(manifest["dim"], int) or not isinstance(manifest["model_id"], str):
        raise IndexFileError(path, "dim must be an integer and model_id a string")
    return manifest


def _load_saved_embedder(folder: Path) -> Embedder:
    """The index's copy of its embedder; a missing or corrupt file is our error naming the folder."""
    try:
        return load_embedder(folder)
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise IndexFileError(folder, f"the embedder copy is unreadable ({type(exc).__name__}: {exc})") from None


def _read_segments(path: Path, dim: int) -> dict[str, _Segments]:
    """Every video's segment vectors and spans from `segments.npz`, checked for consistent shapes."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {name: npz[name] for name in npz.files}  # each npz[name] access re-reads the zip member
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise IndexFileError(path, f"unreadable ({type(exc).__name__}: {exc})") from None
    missing = sorted({"ids", "counts", "vectors", "spans_s", "durations_s", "paths"} - set(data))
    if missing:
        raise IndexFileError(path, f"lacks the arrays {missing}")
    ids, counts, vectors, spans = data["ids"], data["counts"], data["vectors"], data["spans_s"]
    n = len(ids)
    if not (ids.ndim == counts.ndim == 1 and len(counts) == len(data["durations_s"]) == len(data["paths"]) == n
            and vectors.ndim == 2 and vectors.shape[1] == dim and spans.shape == (len(vectors), 2)
            and all(np.issubdtype(a.dtype, np.number) for a in (vectors, spans, data["durations_s"]))
            and np.issubdtype(counts.dtype, np.integer) and (counts >= 1).all() and counts.sum() == len(vectors)
            and len(set(ids.tolist())) == n):
        raise IndexFileError(path, "its arrays disagree in length or shape")
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return {str(vid): _Segments(vectors[a:b].astype(np.float32), spans[a:b].astype(np.float32), float(d), str(p))
            for vid, a, b, d, p in zip(ids, offsets[:-1], offsets[1:], data["durations_s"], data["paths"])}
