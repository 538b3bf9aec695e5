"""Embedders: text, video, and text with inserted latents, all into one vector space."""

from pathlib import Path

from videosearch.embed.base import Embedder, VideoEmbedding
from videosearch.embed.mini import MiniEmbedder

__all__ = ["Embedder", "MiniEmbedder", "VideoEmbedding", "load_embedder"]


def load_embedder(path: str | Path) -> Embedder:
    """Load a saved embedder folder (only the `mini` kind exists so far)."""
    return MiniEmbedder.from_pretrained(path)
