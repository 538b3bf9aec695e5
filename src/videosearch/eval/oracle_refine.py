"""Headroom of latent query refinement: optimise latents per query against the ground truth (an oracle).

Run: `videosearch retriever oracle-refine runs/index --annotations runs/world/test.jsonl`.
For each query, N latent vectors inserted into the text encoder's sequence are trained by gradient
descent to make the ground-truth video win a softmax over the whole corpus. Only an upper bound for
analysis: a real policy never sees the ground truth. VR R@1 before and after says how much a
perfect Soft Query Refinement could gain with this retriever.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from videosearch.corpus.types import Moment
from videosearch.embed import Embedder
from videosearch.errors import ConfigError
from videosearch.progress import track

logger = logging.getLogger(__name__)


@dataclass
class OracleConfig:
    """Latent count, optimisation budget and which queries to use."""

    n_latents: int = 8
    steps: int = 30
    lr: float = 0.05
    tau: float = 0.05
    limit: int = 200  # queries (the first ones of the annotation file); 0 = all
    batch_size: int = 50

    def __post_init__(self) -> None:
        if self.n_latents < 1 or self.steps < 1 or self.batch_size < 1:
            raise ConfigError("n_latents, steps and batch_size must be >= 1")
        if self.limit < 0:
            raise ConfigError("limit must be >= 0 (0 = every query)")


def initial_latents(embedder: Embedder, texts: list[str], n_latents: int) -> torch.Tensor:
    """(B, N, E): each query's mean token input embedding, repeated: a neutral start that keeps the ranking."""
    return embedder.mean_token_embedding(texts).unsqueeze(1).repeat(1, n_latents, 1)


def optimise_latents(embedder: Embedder, texts: list[str], video_vectors: torch.Tensor, targets: torch.Tensor,
                     config: OracleConfig) -> torch.Tensor:
    """Latents trained by gradient descent to make each query's target video win a softmax over the corpus.

    Args:
        embedder: the embedder that made `video_vectors`; its weights are not changed (and get no gradient).
        texts: B queries.
        video_vectors: float32 (V, D) unit vectors of the whole corpus.
        targets: int64 (B,), each query's row of `video_vectors` (its ground truth).
        config: latent count and optimisation budget (`n_latents`, `steps`, `lr`, `tau`).

    Returns:
        float32 (B, N, E) latents for `embedder.embed_text_with_latents(texts, latents)`, detached.
    """
    latents = initial_latents(embedder, texts, config.n_latents).requires_grad_(True)
    optimizer = torch.optim.Adam([latents], lr=config.lr)
    with torch.enable_grad():  # callers may run under no_grad (the agent's episodes)
        for _ in range(config.steps):
            refined = embedder.embed_text_with_latents(texts, latents).to(video_vectors.device)
            logits = refined @ video_vectors.T / config.tau  # (B, V)
            loss = torch.nn.functional.cross_entropy(logits, targets)
            # the gradient of the latents only: the embedder's weights get no .grad to keep or clear
            (latents.grad,) = torch.autograd.grad(loss, [latents])
            optimizer.step()
    return latents.detach()


def _rank_of(scores: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """1-based rank of each row's ground-truth column."""
    return (scores > scores[np.arange(len(gt)), gt][:, None]).sum(1) + 1


def oracle_refine(embedder: Embedder, ids: list[str], video_vectors: np.ndarray, moments: list[Moment],
                  config: OracleConfig) -> dict[str, float]:
    """VR R@1/R@10 (percent) with the plain query, with untrained latents, and with oracle-trained latents.

    Args:
        embedder: the embedder that made `video_vectors`.
        ids: the corpus video ids, one per row of `video_vectors`.
        video_vectors: float32 (V, D) unit vectors of the whole corpus.
        moments: queries with their ground-truth video.
        config: latents and optimisation budget.
    """
    column = {v: i for i, v in enumerate(ids)}
    moments = [m for m in moments if m.video_id in column]
    if config.limit:
        moments = moments[: config.limit]
    if not moments:
        raise ConfigError("none of the annotated videos is in the index: check --annotations against the index")
    videos = torch.from_numpy(np.ascontiguousarray(video_vectors, dtype=np.float32))  # (V, D)
    gt = np.array([column[m.video_id] for m in moments])
    ranks: dict[str, list[np.ndarray]] = {"plain": [], "latents_init": [], "oracle": []}
    for start in track(range(0, len(moments), config.batch_size), description="oracle refinement"):
        chunk = moments[start: start + config.batch_size]
        texts, target = [m.query for m in chunk], torch.from_numpy(gt[start: start + len(chunk)])
        latents = optimise_latents(embedder, texts, videos, target, config)
        with torch.no_grad():
            scores = {"plain": embedder.embed_text(texts) @ videos.numpy().T,
                      "latents_init": embedder.embed_text_with_latents(
                          texts, initial_latents(embedder, texts, config.n_latents)).cpu().numpy() @ videos.numpy().T,
                      "oracle": embedder.embed_text_with_latents(texts, latents).cpu().numpy() @ videos.numpy().T}
        for name, values in scores.items():
            ranks[name].append(_rank_of(values, target.numpy()))
    result: dict[str, float] = {"queries": float(len(moments)), "corpus": float(len(ids))}
    for name, parts in ranks.items():
        r = np.concatenate(parts)
        result[f"{name}_R@1"] = float(100 * np.mean(r <= 1))
        result[f"{name}_R@10"] = float(100 * np.mean(r <= 10))
    return result
