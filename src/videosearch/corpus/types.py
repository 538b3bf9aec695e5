"""The records every reader and producer of the corpus shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Moment:
    """One moment query: a sentence and where it happens in which video (seconds)."""

    qid: str
    query: str
    video_id: str
    start_s: float
    end_s: float
    duration_s: float


@dataclass
class VideoFrames:
    """Frames decoded from one video, with the true presentation time of each frame.

    Attributes:
        video_id: the file's stem.
        frames: uint8 array (T, H, W, 3), RGB.
        timestamps_s: float64 array (T,), seconds from the start of the video.
        duration_s: the video's duration in seconds.
    """

    video_id: str
    frames: np.ndarray
    timestamps_s: np.ndarray
    duration_s: float

    def __len__(self) -> int:
        return len(self.frames)
