"""Videos and annotations in: decoding with true timestamps, dataset readers, the synthetic world."""

from videosearch.corpus.annotations import Annotations, read_moments, write_verified
from videosearch.corpus.types import Moment, VideoFrames
from videosearch.corpus.video import list_videos, read_frames, write_video

__all__ = ["Annotations", "Moment", "VideoFrames", "list_videos", "read_frames", "read_moments", "write_verified",
           "write_video"]
