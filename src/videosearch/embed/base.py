"""The `Embedder` interface: text, video, and text with inserted latents into one vector space."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from videosearch.corpus.types import VideoFrames


@dataclass
class VideoEmbedding:
    """A video in the embedding space.

    Attributes:
        vector: float32 (D,), L2-normalised, the whole video.
        segment_vectors: float32 (S, D), L2-normalised, one per temporal window.
        segment_spans_s: float32 (S, 2), each window's (start, end) in seconds of the source video.
        duration_s: the video's duration in seconds.
    """

    vector: np.ndarray
    segment_vectors: np.ndarray
    segment_spans_s: np.ndarray
    duration_s: float


class Embedder(ABC):
    """Maps queries and videos into one space where the inner product ranks videos for a query."""

    #: names the model and its weights; an index remembers it and refuses another embedder
    model_id: str
    dim: int
    #: frame sampling the video side expects (frames per second, cap on frames per video)
    fps: float
    max_frames: int
    #: side of the square frames the video side reads (decoders resize to it); None = as decoded
    frame_size: int | None = None

    @abstractmethod
    def embed_text(self, texts: list[str]) -> np.ndarray:
        """float32 (N, D), L2-normalised."""

    @abstractmethod
    def embed_video(self, videos: list[VideoFrames]) -> list[VideoEmbedding]:
        """One `VideoEmbedding` per decoded video."""

    @abstractmethod
    def embed_text_with_latents(self, texts: list[str], latents: torch.Tensor) -> torch.Tensor:
        """Differentiable query vectors with `latents` inserted into the text encoder's input sequence.

        Args:
            texts: B queries.
            latents: float (B, N, E) vectors in the text encoder's input-embedding space (E = `latent_dim`).

        Returns:
            float (B, D), L2-normalised; gradients flow back to `latents`.
        """

    @abstractmethod
    def save_pretrained(self, out_dir: str | Path) -> None:
        """Write the embedder as a folder that `load_embedder` reads back."""

    @property
    @abstractmethod
    def latent_dim(self) -> int:
        """Width E of the text encoder's input embeddings, where latents are inserted."""

    @property
    def latent_norm(self) -> float:
        """Typical L2 norm of one of the text encoder's input embeddings: the scale an inserted latent starts at."""
        return 1.0
