"""The reference release's prepared data, read in place (DESIGN.md section 6).

    <root>/raw_annotation/<split>.jsonl                          VERIFIED annotations (`read_moments`)
    <root>/<split>/query_embedding/query_embeddings.<split>.npy   (Q, D) float32; row i = line i of
                                   query_meta.<split>.jsonl       {"qid", "query", "pos_doc_id", ...}
    <root>/<split>/video_embedding_1fps/segment_embeds.npy        (V, D) float32, one row per whole video
                                   docid2row.json                 {video id: row}
    <root>/<split>/video_npy_with_meta/<video id>.npy             uint8 (T, H, W, 3) RGB frames
                                   meta.jsonl                     {"video_id", "sampled_timestamps_sec", ...}
    <root>/<split>/index/index.faiss + id_map.json                IndexFlatIP over the same rows (checked)

A long video's frames were spread over its whole length (64 at most): each keeps the time its meta gives, never an
assumed 1 fps (the release's own reader labelled them 1 fps). A frame the release duplicated to make T even takes
the time of the frame it copies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from videosearch.corpus.annotations import read_moments
from videosearch.corpus.types import VideoFrames
from videosearch.errors import ConfigError, VideoReadError

FRAMES_META = "meta.jsonl"


@dataclass(frozen=True)
class ReleaseSplit:
    """The paths of one split of a release's prepared data."""

    root: Path
    split: str

    @property
    def annotations(self) -> Path:
        return self.root / "raw_annotation" / f"{self.split}.jsonl"

    @property
    def query_vectors(self) -> Path:
        return self.root / self.split / "query_embedding" / f"query_embeddings.{self.split}.npy"

    @property
    def query_meta(self) -> Path:
        return self.root / self.split / "query_embedding" / f"query_meta.{self.split}.jsonl"

    @property
    def video_vectors(self) -> Path:
        return self.root / self.split / "video_embedding_1fps" / "segment_embeds.npy"

    @property
    def docid2row(self) -> Path:
        return self.root / self.split / "video_embedding_1fps" / "docid2row.json"

    @property
    def frames(self) -> Path:
        return self.root / self.split / "video_npy_with_meta"

    @property
    def faiss_index(self) -> Path:
        return self.root / self.split / "index" / "index.faiss"

    def check(self, parts: tuple[str, ...] = ("video_vectors", "docid2row", "frames")) -> None:
        """Raise ConfigError naming every missing part of the layout."""
        if not self.root.is_dir():
            raise ConfigError(f"{self.root} is not a folder: give the dataset folder of the release's prepared data "
                              "(the one holding raw_annotation/ and the split folders)")
        missing = [str(getattr(self, part)) for part in parts if not getattr(self, part).exists()]
        if missing:
            raise ConfigError(f"{self.root} lacks parts of the release's layout for split {self.split!r}: "
                              f"{', '.join(missing)}")


def read_video_vectors(split: ReleaseSplit) -> tuple[list[str], np.ndarray]:
    """Every video's id and its L2-normalised vector (V, D), in `docid2row.json`'s row order; checked against the
    release's FAISS index when it is there."""
    split.check(("video_vectors", "docid2row"))
    vectors = _load_matrix(split.video_vectors)
    rows = _load_json(split.docid2row)
    if not isinstance(rows, dict) or not all(isinstance(r, int) and not isinstance(r, bool) for r in rows.values()):
        raise ConfigError(f"{split.docid2row}: must map each video id to one row number")
    if sorted(rows.values()) != list(range(len(vectors))):
        raise ConfigError(f"{split.docid2row}: its {len(rows)} rows must be 0..{len(vectors) - 1} of "
                          f"{split.video_vectors.name}, each once")
    ids = sorted(rows, key=rows.__getitem__)
    if split.faiss_index.exists():
        _check_faiss(split, ids, vectors)
    return ids, vectors


def read_query_vectors(split: ReleaseSplit) -> dict[str, np.ndarray]:
    """The release's query vectors by query text (L2-normalised); a text given twice keeps its last row, as the
    release's evaluator does."""
    split.check(("query_vectors", "query_meta"))
    vectors = _load_matrix(split.query_vectors)
    lines = [line for line in split.query_meta.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(lines) != len(vectors):
        raise ConfigError(f"{split.query_meta} has {len(lines)} lines but {split.query_vectors.name} "
                          f"{len(vectors)} rows: they must match line for row")
    by_text = {}
    for number, (line, vector) in enumerate(zip(lines, vectors), 1):
        try:
            query = json.loads(line)["query"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(f"{split.query_meta}:{number}: not a JSON object with a 'query'") from None
        by_text[str(query)] = vector
    return by_text


def frames_meta(folder: Path) -> dict[str, dict]:
    """`meta.jsonl` of a frame-array folder, by video id."""
    path = folder / FRAMES_META
    if not path.is_file():
        raise ConfigError(f"{folder} has no {FRAMES_META}: the frame arrays' times are unknown without it")
    meta = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            meta[str(row["video_id"])] = row
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(f"{path}:{number}: not a JSON object with a 'video_id'") from None
    return meta


def read_frame_array(path: Path, meta: dict, fps: float = 1.0, max_frames: int | None = None,
                     size: tuple[int, int] | None = None) -> VideoFrames:
    """One video's frame array with the times of its meta row, sampled as `read_frames` samples a video file: at
    targets 0, 1/fps, ... the first frame at or after each, then at most `max_frames` spread uniformly."""
    try:
        frames = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise VideoReadError(path, f"not a readable .npy frame array ({exc})") from None
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise VideoReadError(path, f"frames must be uint8 (T, H, W, 3) with T >= 1, got {frames.dtype} "
                                   f"{frames.shape}")
    times = np.asarray(meta.get("sampled_timestamps_sec", []), dtype=np.float64)
    if meta.get("even_pad_applied") and len(times) == len(frames) - 1:
        times = np.append(times, times[-1])  # the duplicated last frame shows the same moment
    if times.shape != (len(frames),) or not np.isfinite(times).all() or (np.diff(times) < 0).any():
        raise VideoReadError(path, f"its meta row gives {len(times)} timestamps for {len(frames)} frames; they must "
                                   "be one finite, non-decreasing time per frame")
    duration = float(meta.get("source_duration_sec") or times[-1])
    chosen = _sample(times, duration, fps, max_frames)
    picked = np.asarray(frames[chosen])
    if size is not None and picked.shape[1:3] != tuple(size):
        x = torch.from_numpy(picked).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        picked = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return VideoFrames(path.stem, np.ascontiguousarray(picked), times[chosen], max(duration, float(times[-1])))


def _sample(times: np.ndarray, duration: float, fps: float, max_frames: int | None) -> list[int]:
    kept: list[int] = []
    for target in np.arange(0.0, max(duration, times[-1] + 1e-9), 1.0 / fps):
        i = int(np.searchsorted(times, target - 1e-6))
        if i < len(times) and (not kept or kept[-1] != i):
            kept.append(i)
    if max_frames is not None and len(kept) > max_frames:
        kept = [kept[int(j)] for j in np.linspace(0, len(kept) - 1, max_frames).round().astype(np.int64)]
    return kept


def _load_matrix(path: Path) -> np.ndarray:
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable .npy array ({exc})") from None
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating) or not np.isfinite(matrix).all():
        raise ConfigError(f"{path}: must be a finite float matrix (rows, dim), got {matrix.dtype} {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ConfigError(f"{path}: row {int(np.argmin(norms[:, 0]))} is all zeros")
    return (matrix / norms).astype(np.float32)


def _load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None


def _check_faiss(split: ReleaseSplit, ids: list[str], vectors: np.ndarray) -> None:
    """The release's IndexFlatIP must hold the same rows (ids from `id_map.json`) as the embeddings."""
    import faiss

    try:
        index = faiss.read_index(str(split.faiss_index))
    except RuntimeError as exc:
        raise ConfigError(f"{split.faiss_index}: unreadable ({str(exc).splitlines()[0]})") from None
    id_map_path = split.faiss_index.parent / "id_map.json"
    id_map = _load_json(id_map_path) if id_map_path.exists() else ids
    if index.d != vectors.shape[1] or index.ntotal != len(vectors) or id_map != ids:
        raise ConfigError(f"{split.faiss_index} ({index.ntotal} x {index.d}, ids of {id_map_path.name}) does not "
                          f"hold the rows of {split.video_vectors.name} ({len(vectors)} x {vectors.shape[1]}): "
                          "the prepared data is inconsistent; rebuild its index or remove it")


@lru_cache(maxsize=8)
def _folder_meta(folder: str, mtime_ns: int) -> dict[str, dict]:
    return frames_meta(Path(folder))


def read_release_frames(path: Path, fps: float = 1.0, max_frames: int | None = None,
                        size: tuple[int, int] | None = None) -> VideoFrames:
    """A frame array of the release by its path; its folder's `meta.jsonl` (read once) gives the times."""
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "no such file; check the path")
    meta_file = path.parent / FRAMES_META
    if not meta_file.is_file():
        raise VideoReadError(path, f"no {FRAMES_META} beside it: the times of its frames are unknown")
    meta = _folder_meta(str(path.parent), meta_file.stat().st_mtime_ns).get(path.stem)
    if meta is None:
        raise VideoReadError(path, f"{meta_file} has no row for video {path.stem!r}")
    return read_frame_array(path, meta, fps, max_frames, size)


def release_videos(split: ReleaseSplit, ids: list[str]) -> tuple[list[float], list[str]]:
    """Each video's duration and the path of its frame array ("" when the split ships no frames): durations from
    the frames' meta, else from the split's annotations."""
    meta = frames_meta(split.frames) if split.frames.is_dir() else {}
    annotated: dict[str, float] = {}
    if split.annotations.is_file():
        annotated = {m.video_id: m.duration_s for m in read_moments(split.annotations)}
    durations, paths, unknown = [], [], []
    for vid in ids:
        row = meta.get(vid)
        duration = (row or {}).get("source_duration_sec") or annotated.get(vid)
        if duration is None:
            unknown.append(vid)
        durations.append(float(duration or 0.0))
        paths.append(str((split.frames / f"{vid}.npy").resolve()) if row else "")
    if unknown:
        raise ConfigError(f"{len(unknown)} videos of {split.docid2row.name} (e.g. {unknown[:3]}) have neither a "
                          f"frame array in {split.frames} nor an annotation in {split.annotations}: their "
                          "durations are unknown")
    return durations, paths
