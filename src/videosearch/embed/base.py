"""The `Embedder` interface: text, video, and text with inserted latents into one vector space."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from videosearch.corpus.types import VideoFrames
from videosearch.errors import ConfigError


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


def weights_digest(module: torch.nn.Module, samples: int = 4096) -> str:
    """A short hash of a model's weights: every tensor's name and shape and `samples` evenly spaced values, so that a
    model of gigabytes is told from another (fine-tuning moves every weight) without reading all of it."""
    digest = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        picked = flat[:: max(1, len(flat) // samples)][:samples]
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(picked.float().cpu().numpy().tobytes())
    return digest.hexdigest()[:12]


def read_json_object(path: Path) -> dict:
    """A JSON object from a file; anything else is a ConfigError naming the file."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: not a JSON object")
    return value


def save_reference(out_dir: str | Path, kind: str, settings: dict, model_id: str) -> None:
    """Save an embedder as its settings, which name its model's folder (`model_path`): an index that keeps a copy
    of its embedder copies this, never gigabytes of weights."""
    if not settings.get("model_path"):
        raise ConfigError(f"this {kind} embedder was not loaded from a folder, so an index cannot name its model: "
                          "load it with from_pretrained(path)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"kind": kind, "embedder": settings, "model_id": model_id}, indent=2))


@contextmanager
def model_errors(model_path: str, what: str) -> Iterator[None]:
    """Turn a failed transformers load into a ConfigError naming the model's folder, and saying when it is gone."""
    try:
        yield
    except (OSError, ValueError) as exc:
        if Path(model_path).is_absolute() and not Path(model_path).exists():
            raise ConfigError(f"the model folder {model_path} is gone: put it back, or rebuild the index with a model "
                              "that exists") from None
        raise ConfigError(f"{model_path} cannot be loaded as {what} ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0]})") from None


@torch.no_grad()
def masked_mean_embedding(table: torch.nn.Embedding, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, E) float32 CPU: the mean of each row's embeddings over its real tokens (`mask` 1)."""
    embeds = table(ids.to(table.weight.device)).float().cpu()
    weights = mask.unsqueeze(-1).float().cpu()
    return (embeds * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def segment_ranges(n_frames: int, size: int, stride: int) -> list[tuple[int, int]]:
    """Frame ranges [i, j) of windows of `size` frames every `stride`; the last window ends the video."""
    starts = list(range(0, max(n_frames - size, 0) + 1, stride))
    if starts[-1] + size < n_frames:
        starts.append(n_frames - size)
    return [(i, min(i + size, n_frames)) for i in starts]


def segment_spans_s(video: VideoFrames, ranges: list[tuple[int, int]], fps: float) -> list[tuple[float, float]]:
    """(start, end) seconds of frame ranges [i, j): first frame's true time to one sampling step past the last."""
    return [(float(video.timestamps_s[a]), min(float(video.timestamps_s[b - 1]) + 1.0 / fps, video.duration_s))
            for a, b in ranges]


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

    @abstractmethod
    def mean_token_embedding(self, texts: list[str]) -> torch.Tensor:
        """float32 (B, E) on the CPU: each text's mean input embedding over its tokens (a neutral latent)."""

    @property
    def latent_norm(self) -> float:
        """Typical L2 norm of one of the text encoder's input embeddings: the scale an inserted latent starts at."""
        return 1.0
