"""Embedders: text, video, and text with inserted latents, all into one vector space."""

import json
from pathlib import Path

from videosearch.embed.base import Embedder, VideoEmbedding
from videosearch.embed.clip import FAMILIES as CLIP_FAMILIES
from videosearch.embed.clip import ClipEmbedder, ClipEmbedderConfig
from videosearch.embed.mini import MiniEmbedder
from videosearch.embed.precomputed import PrecomputedEmbedder
from videosearch.embed.qwen3vl import Qwen3VLEmbedder, Qwen3VLEmbedderConfig

__all__ = ["ClipEmbedder", "ClipEmbedderConfig", "Embedder", "MiniEmbedder", "PrecomputedEmbedder",
           "Qwen3VLEmbedder", "Qwen3VLEmbedderConfig", "VideoEmbedding", "load_embedder"]


def load_embedder(path: str | Path) -> Embedder:
    """Load a saved embedder folder, or a transformers checkpoint folder: CLIP / SigLIP as a `ClipEmbedder`,
    Qwen3-VL(-Embedding) as a `Qwen3VLEmbedder`."""
    try:
        meta = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        meta = {}  # the mini loader names what is missing
    kind = (meta.get("kind") or meta.get("model_type")) if isinstance(meta, dict) else None
    if kind in ("clip", *CLIP_FAMILIES):
        return ClipEmbedder.from_pretrained(path)
    if kind in ("qwen3vl", "qwen3_vl"):
        return Qwen3VLEmbedder.from_pretrained(path)
    if kind == "precomputed":
        return PrecomputedEmbedder.from_pretrained(path)
    return MiniEmbedder.from_pretrained(path)
