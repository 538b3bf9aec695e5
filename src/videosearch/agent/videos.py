"""Decoded frames of indexed videos, read once, at the sampling a policy expects."""

from __future__ import annotations

from videosearch.corpus.types import VideoFrames
from videosearch.corpus.video import read_frames
from videosearch.engine import SearchEngine
from videosearch.policy.policy import PolicyConfig


class VideoCache:
    """`cache[video_id]` -> `VideoFrames` of an indexed video, decoded on first use (true timestamps kept)."""

    def __init__(self, engine: SearchEngine, config: PolicyConfig, frame_size: tuple[int, int] | None) -> None:
        self.engine, self.config, self.frame_size = engine, config, frame_size
        self.frames: dict[str, VideoFrames] = {}

    def __getitem__(self, video_id: str) -> VideoFrames:
        if video_id not in self.frames:
            path = self.engine.video_info(video_id)["path"]
            self.frames[video_id] = read_frames(path, fps=self.config.fps, max_frames=self.config.max_frames,
                                                size=self.frame_size)
        return self.frames[video_id]
