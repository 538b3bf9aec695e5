"""Decode video files into frames sampled at a fixed rate, and write small mp4 files.

Every frame returned carries its true presentation time, so a video sampled below its native
rate, or capped to a number of frames, keeps correct timestamps (the reference release
labelled subsampled frames as 1 fps; we do not).

Example:
    frames = read_frames("videos/TAQ25.mp4", fps=1.0, max_frames=64, size=(224, 224))
    frames.frames.shape  # (T, 224, 224, 3) uint8
    frames.timestamps_s  # (T,) float64, seconds from the start of the video
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from videosearch.corpus.release import read_release_frames
from videosearch.corpus.types import VideoFrames
from videosearch.errors import VideoReadError

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")

# Tolerance (in units of sampling periods) when comparing a frame time with a target time, so that
# a frame at 1/3 s counts as reaching the target 1/3 s despite rounding in the stream's time base.
_TARGET_TOLERANCE = 1e-6

# A stream that stops this many seconds before its declared duration is probably truncated.
_TRUNCATION_WARN_S = 1.0


def read_frames(
    path: str | os.PathLike[str],
    fps: float = 1.0,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
) -> VideoFrames:
    """Decode a video and sample frames at `fps`, keeping each frame's true timestamp.

    For the target times 0, 1/fps, 2/fps, ... below the duration, the first decoded frame whose
    presentation time is >= the target is kept (a target after the last frame is skipped, and a
    frame is kept once even if it is the first one at or after several targets). If more than
    `max_frames` frames were sampled, `max_frames` of them are picked uniformly
    (`np.linspace` over their indices). Timestamps are always those of the frames kept, never the
    target times. Memory is bounded by the output: only the frames returned are held, as RGB at
    `size`, picked from the declared duration (the file is decoded a second time when its stream
    does not match it, or declares none).

    Args:
        path: a video file in any format FFmpeg reads (mp4, mkv, webm, avi, mov, ...), or a `.npy` frame array
            of the reference release (`corpus.release`: its folder's meta.jsonl gives the frames' times).
        fps: sampling rate in frames per second; > 0.
        max_frames: keep at most this many frames, spread uniformly; None keeps all sampled.
        size: (height, width) in pixels to resize to; None keeps the native size.

    Returns:
        VideoFrames with video_id = the file's stem, frames uint8 (T, H, W, 3) RGB,
        timestamps_s float64 (T,) in seconds from the stream start (increasing), and duration_s.

    Raises:
        VideoReadError: the file is missing, empty, truncated, has no video stream, or is not a
            video FFmpeg can decode.
        ValueError: fps, max_frames or size is out of range.
    """
    _check_read_args(fps, max_frames, size)
    path = Path(path)
    if path.suffix == ".npy":  # a frame array of the reference release's prepared data
        return read_release_frames(path, fps, max_frames, size)
    if not path.is_file():
        raise VideoReadError(path, "no such file; check the path")
    if path.stat().st_size == 0:
        raise VideoReadError(path, "the file is empty (0 bytes); re-download or re-encode it")
    try:
        scan = _scan_file(path, fps, max_frames, size, count=None)
        chosen = range(scan.count) if max_frames is None else _uniform_indices(scan.count, max_frames)
        if any(i not in scan.kept for i in chosen):
            # The declared duration misjudged how many frames are sampled (a stream cut short, gaps, or
            # no duration declared): decode once more, now keeping exactly the chosen frames.
            scan = _scan_file(path, fps, max_frames, size, count=scan.count)
    except av.error.FFmpegError as err:
        raise VideoReadError(
            path, f"FFmpeg cannot decode it ({err.strerror or err}); the file is truncated or not a video"
        ) from err
    if any(i not in scan.kept for i in chosen):
        raise VideoReadError(path, "the stream decodes differently on a second pass; re-encode the file")
    return _video_frames(path, scan, chosen)


def list_videos(folder: str | os.PathLike[str]) -> list[Path]:
    """List the video files directly inside a folder, sorted by name.

    Files are matched by extension (case-insensitive): .mp4 .mkv .webm .avi .mov .m4v. Hidden
    files (names starting with ".", such as the temporary files of `write_video`) are skipped.
    Subfolders are not searched.

    Args:
        folder: the folder holding the videos.

    Returns:
        Paths of the video files, sorted.

    Raises:
        VideoReadError: the folder does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoReadError(folder, "no such folder; pass the folder that holds the video files")
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_EXTENSIONS
    )


def write_video(path: str | os.PathLike[str], frames: np.ndarray, fps: float) -> None:
    """Encode frames as H.264 (yuv420p) and write them atomically.

    The video goes to a temporary file in the same folder (same extension, so the container is
    chosen the same way) and is moved onto `path` only once complete.

    Args:
        path: output file; its extension picks a container that holds H.264 (.mp4, .mkv, .mov, .m4v;
            not .webm, for which PyAV raises ValueError).
        frames: uint8 array (T, H, W, 3), RGB, with T >= 1 and H, W even (yuv420p needs it).
        fps: frame rate in frames per second; > 0. Frame i is shown at i / fps seconds.

    Raises:
        ValueError: frames has the wrong dtype, shape or odd dimensions, or fps is not > 0.
    """
    _check_write_args(frames, fps)
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")
    try:
        _encode_h264(tmp, frames, Fraction(fps).limit_denominator(1001))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass
class _Scan:
    """What one decoding pass saw: the frames kept (sample index -> RGB array and time) and how it ended."""

    kept: dict[int, tuple[np.ndarray, float]]
    count: int  # frames sampled, kept or not
    last_s: float | None  # time of the last frame decoded
    ran_out: bool  # the stream ended before reaching its declared duration
    declared_s: float | None
    step_s: float | None


def _scan_file(
    path: Path, fps: float, max_frames: int | None, size: tuple[int, int] | None, count: int | None
) -> _Scan:
    """Decode the file once, keeping (as RGB at `size`) only the sampled frames `read_frames` may return.

    Without `max_frames` every sampled frame is kept. With it, the kept indices are
    `_uniform_indices(count, max_frames)`, where `count` is the number of sampled frames if known,
    else the number of sampling targets before the declared duration (none kept if none is declared),
    so memory is bounded by the output, not by the length of the video.
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoReadError(path, "the file has no video stream (audio only or not a video)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base
        start_s = float(stream.start_time * time_base) if stream.start_time is not None and time_base else 0.0
        step_s = 1.0 / float(stream.average_rate) if stream.average_rate else None
        declared_s = _declared_duration_s(container, stream)
        if count is None and declared_s is not None:
            count = _target_count(declared_s, fps)
        keep = None if max_frames is None else set(_uniform_indices(count or 0, max_frames))

        kept: dict[int, tuple[np.ndarray, float]] = {}
        sampled = next_target = 0
        last_s: float | None = None
        ran_out = True
        for frame in _decode(container, stream, path):
            if declared_s is not None and next_target / fps >= declared_s:
                ran_out = False
                break
            time_s = _frame_time_s(frame, time_base, start_s, last_s, step_s)
            last_s = time_s
            if time_s * fps < next_target - _TARGET_TOLERANCE:
                continue
            if keep is None or sampled in keep:
                kept[sampled] = (_to_rgb(frame, size), time_s)
            sampled += 1
            next_target = math.floor(time_s * fps + _TARGET_TOLERANCE) + 1
    if sampled == 0:
        raise VideoReadError(path, "no video frame could be decoded; the file is truncated or empty")
    return _Scan(kept, sampled, last_s, ran_out, declared_s, step_s)


def _target_count(declared_s: float, fps: float) -> int:
    """How many sampling targets k / fps lie before the declared duration (as the decode loop compares them)."""
    count = max(math.ceil(declared_s * fps) - 1, 0)
    while count / fps < declared_s:
        count += 1
    return count


def _video_frames(path: Path, scan: _Scan, chosen: Sequence[int]) -> VideoFrames:
    """Assemble the chosen kept frames, warning when the stream ends well before its declared duration."""
    declared_s, last_s = scan.declared_s, scan.last_s
    if declared_s is not None and scan.ran_out and last_s is not None and declared_s - last_s > _TRUNCATION_WARN_S:
        logger.warning(
            "%s: the stream ends at %.2f s but declares %.2f s; the file may be truncated", path, last_s, declared_s
        )
    times_s = [scan.kept[i][1] for i in chosen]
    # Without a declared duration, or one that would put a kept frame past the end, the frames decide it.
    end_of_frames_s = times_s[-1] + (scan.step_s or 0.0)
    duration_s = declared_s if declared_s is not None and declared_s > times_s[-1] else end_of_frames_s
    return VideoFrames(
        video_id=path.stem,
        frames=np.stack([scan.kept[i][0] for i in chosen]).astype(np.uint8, copy=False),
        timestamps_s=np.asarray(times_s, dtype=np.float64),
        duration_s=float(duration_s),
    )


def _decode(
    container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> Iterator[av.VideoFrame]:
    """Yield the stream's frames in presentation order, raising on a truncated packet.

    With frame threading FFmpeg drops the decode error a truncated packet causes and simply
    stops, so incomplete packets are caught here from the demuxer's corrupt flag instead.
    """
    for packet in container.demux(stream):
        if packet.is_corrupt:
            at_s = f" at {float(packet.pts * packet.time_base):.2f} s" if packet.pts is not None else ""
            raise VideoReadError(path, f"the video data is incomplete{at_s}; the file is truncated or damaged")
        yield from packet.decode()


def _declared_duration_s(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    """The duration the file declares: the stream's, else the container's; None if unknown or <= 0."""
    if stream.duration is not None and stream.time_base:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / av.time_base
    else:
        return None
    return duration_s if duration_s > 0 else None


def _frame_time_s(
    frame: av.VideoFrame, time_base: Fraction | None, start_s: float, last_s: float | None, step_s: float | None
) -> float:
    """A frame's presentation time in seconds from the stream start.

    Frames without a timestamp (some raw or AVI streams) are placed one average frame period
    after the previous frame.
    """
    if frame.pts is not None and time_base:
        return float(frame.pts * time_base) - start_s
    if last_s is None:
        return 0.0
    return last_s + (step_s or 0.0)


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """Convert a decoded frame to a uint8 (H, W, 3) RGB array, resized to (height, width) if given."""
    if size is None:
        return frame.to_ndarray(format="rgb24")
    height, width = size
    return frame.to_ndarray(format="rgb24", width=width, height=height)


def _uniform_indices(count: int, max_frames: int) -> list[int]:
    """Indices of `max_frames` items spread uniformly over `count` (all of them if count <= max_frames)."""
    if count <= max_frames:
        return list(range(count))
    return [int(i) for i in np.linspace(0, count - 1, max_frames).round().astype(np.int64)]


def _check_read_args(fps: float, max_frames: int | None, size: tuple[int, int] | None) -> None:
    """Raise ValueError naming the argument when a sampling argument is out of range."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0 (frames per second), got {fps!r}")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be an int >= 1 or None, got {max_frames!r}")
    if size is not None and (
        len(size) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size)
    ):
        raise ValueError(f"size must be (height, width) in pixels, both ints > 0, or None; got {size!r}")


def _check_write_args(frames: np.ndarray, fps: float) -> None:
    """Raise ValueError saying what to fix when frames or fps cannot be encoded as yuv420p H.264."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a uint8 numpy array (T, H, W, 3), got {type(frames).__name__} "
                         f"of dtype {getattr(frames, 'dtype', None)}")
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T >= 1 (RGB), got {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2 or height == 0 or width == 0:
        raise ValueError(f"yuv420p needs an even, non-zero height and width, got {height}x{width}; "
                         "crop or pad the frames by one pixel")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0 (frames per second), got {fps!r}")


def _encode_h264(path: Path, frames: np.ndarray, rate: Fraction) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames to `path` with libx264, frame i at pts i / rate."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.options = {"crf": "23", "preset": "veryfast"}
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
