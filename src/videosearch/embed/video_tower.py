"""The `mini` video tower: a small CNN per 1-fps frame, a temporal transformer, and heads into the text space.

Per-frame features (`frame_features`) are also what the mini policy's vision projector reads later.
The whole-video vector is a mean over frames: one vector for the whole video, which is exactly
what confuses near-duplicate videos and leaves room for query refinement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from videosearch.embed.base import segment_ranges
from videosearch.errors import ConfigError


@dataclass
class VideoTowerConfig:
    """Sizes of the video tower; `out_dim` must equal the text tower's width."""

    frame_size: int = 32  # frames are resized to frame_size x frame_size
    channels: tuple[int, int, int] = (32, 64, 64)
    feature_dim: int = 256  # per-frame feature width
    layers: int = 2  # temporal transformer layers
    heads: int = 4
    dropout: float = 0.1  # in the temporal transformer and before the head; the tower overfits without it
    out_dim: int = 384
    max_frames: int = 64
    segment_frames: int = 4  # window length (frames) of a segment vector
    segment_stride: int = 2

    def __post_init__(self) -> None:
        if self.frame_size % 4:
            raise ConfigError(f"video_tower.frame_size must be a multiple of 4 (got {self.frame_size})")
        if self.feature_dim % self.heads:
            raise ConfigError(f"video_tower.feature_dim ({self.feature_dim}) must be divisible by heads "
                              f"({self.heads})")
        if not 1 <= self.segment_stride <= self.segment_frames:
            raise ConfigError("video_tower.segment_stride must be in 1..segment_frames")

    def to_dict(self) -> dict:
        return asdict(self)


def _time_encoding(timestamps_s: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal encoding of true timestamps (B, T) -> (B, T, dim), so positions are in seconds."""
    scale = -torch.log(torch.tensor(1000.0)) / dim  # a 0-d CPU tensor: it multiplies a tensor on any device
    freqs = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=timestamps_s.device) * scale)
    angles = timestamps_s.unsqueeze(-1).float() * freqs  # (B, T, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class VideoTower(nn.Module):
    """Frames (B, T, 3, S, S) in [0, 1] -> per-frame features, segment vectors and a video vector."""

    def __init__(self, config: VideoTowerConfig) -> None:
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels
        self.frame_encoder = nn.Sequential(
            nn.Conv2d(5, c1, 3, stride=2, padding=1), nn.GELU(),  # +2 coordinate channels: where things are
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(c2, c3, 3, stride=1, padding=1), nn.GELU(),
        )
        # mean and max over positions: what is in the frame and, through the coordinate channels, where
        self.frame_projector = nn.Sequential(nn.Linear(2 * c3, config.feature_dim), nn.LayerNorm(config.feature_dim))
        layer = nn.TransformerEncoderLayer(config.feature_dim, config.heads, 2 * config.feature_dim,
                                           dropout=config.dropout, batch_first=True, norm_first=True)
        self.temporal = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(config.feature_dim), nn.Dropout(config.dropout),
                                  nn.Linear(config.feature_dim, config.out_dim))
        size = config.frame_size
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
        self.register_buffer("coords", torch.stack([ys, xs]), persistent=False)  # (2, S, S)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, S, S) float in [0, 1] -> (B, T, F) per-frame features."""
        b, t = frames.shape[:2]
        flat = frames.reshape(b * t, *frames.shape[2:])
        flat = torch.cat([flat, self.coords.expand(b * t, -1, -1, -1)], dim=1)  # (B*T, 5, S, S)
        maps = self.frame_encoder(flat)  # (B*T, C, S/4, S/4)
        pooled = torch.cat([maps.mean((2, 3)), maps.amax((2, 3))], dim=1)  # (B*T, 2C)
        return self.frame_projector(pooled).reshape(b, t, -1)

    def forward(
        self, frames: torch.Tensor, timestamps_s: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Contextual frame embeddings and the video vector.

        Args:
            frames: float (B, T, 3, S, S) in [0, 1], padded along T.
            timestamps_s: float (B, T) true frame times.
            mask: bool (B, T), True for real frames.

        Returns:
            frame_vectors: float (B, T, D) unnormalised, in the text space.
            video_vectors: float (B, D) L2-normalised mean over real frames.
        """
        features = self.frame_features(frames) + _time_encoding(timestamps_s, self.config.feature_dim)
        context = self.temporal(features, src_key_padding_mask=~mask)  # (B, T, F)
        frame_vectors = self.head(context)  # (B, T, D)
        weights = mask.unsqueeze(-1).float()
        video = (frame_vectors * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return frame_vectors, nn.functional.normalize(video, dim=-1)

    def segment_ranges(self, n_frames: int) -> list[tuple[int, int]]:
        """Frame ranges [i, j) of the segment windows of a video with `n_frames` frames; the last one ends it."""
        return segment_ranges(n_frames, self.config.segment_frames, self.config.segment_stride)

    def segments(self, frame_vectors: torch.Tensor, n_frames: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Windows over one video's frame vectors (T, D) -> (S, D) normalised, with frame ranges [i, j)."""
        ranges = self.segment_ranges(n_frames)
        vectors = torch.stack([frame_vectors[i:j].mean(0) for i, j in ranges])
        return nn.functional.normalize(vectors, dim=-1), ranges
