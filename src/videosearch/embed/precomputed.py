"""Query vectors computed elsewhere, looked up by their text: searching prepared data without its model.

The reference release ships the vectors of its queries (`query_embeddings`); with them the search baseline, the
walk (`--refine none`) and the oracle judge run on a CPU without the 2B embedder. Whatever embeds new text or
videos (SQR, HQR, a query the file lacks, indexing) needs the model itself: `--embedder`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from videosearch.corpus.types import VideoFrames
from videosearch.embed.base import Embedder, VideoEmbedding, read_json_object
from videosearch.errors import ConfigError

VECTORS = "queries.npz"
NEEDS_MODEL = "give the embedder model with --embedder (e.g. a Qwen3-VL-Embedding-2B folder)"


class PrecomputedEmbedder(Embedder):
    """`embed_text` returns the stored vector of each known query; nothing else can be embedded."""

    fps = 1.0
    max_frames = 64

    def __init__(self, vectors: dict[str, np.ndarray], model_id: str = "") -> None:
        if not vectors:
            raise ConfigError("no query vectors to look up")
        self.texts = list(vectors)
        self.vectors = np.stack([np.asarray(vectors[t], np.float32) for t in self.texts])
        self.dim = int(self.vectors.shape[1])
        self._rows = {t: i for i, t in enumerate(self.texts)}
        digest = hashlib.sha1(self.vectors[:64].tobytes()).hexdigest()[:12]
        self.model_id = model_id or f"precomputed-{self.dim}d-{digest}"

    @property
    def latent_dim(self) -> int:
        return self.dim

    def embed_text(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self._rows]
        if missing:
            raise ConfigError(f"no stored vector for the query {missing[0][:80]!r} ({len(missing)} missing): this "
                              f"index answers only the queries of its prepared data; {NEEDS_MODEL}")
        return self.vectors[[self._rows[t] for t in texts]] if texts else np.zeros((0, self.dim), np.float32)

    def embed_video(self, videos: list[VideoFrames]) -> list[VideoEmbedding]:
        raise ConfigError(f"stored query vectors cannot embed videos; {NEEDS_MODEL}")

    def embed_text_with_latents(self, texts: list[str], latents: torch.Tensor) -> torch.Tensor:
        raise ConfigError(f"refining queries (SQR) embeds new text, which stored vectors cannot do; {NEEDS_MODEL}")

    def mean_token_embedding(self, texts: list[str]) -> torch.Tensor:
        raise ConfigError(f"stored query vectors have no token embeddings; {NEEDS_MODEL}")

    def save_pretrained(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        np.savez(out / VECTORS, texts=np.array(self.texts, dtype=str), vectors=self.vectors)
        (out / "config.json").write_text(json.dumps({"kind": "precomputed", "model_id": self.model_id}, indent=2))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> PrecomputedEmbedder:
        folder = Path(path)
        meta = read_json_object(folder / "config.json")
        try:
            with np.load(folder / VECTORS, allow_pickle=False) as data:
                texts, vectors = data["texts"].tolist(), data["vectors"]
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"{folder / VECTORS}: unreadable ({type(exc).__name__}: {exc})") from None
        return cls(dict(zip(texts, vectors)), str(meta.get("model_id", "")))
