"""Synthetic vectors and an exact numpy top-k for the index tests."""

from __future__ import annotations

import numpy as np


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """float32 (n, dim) random directions, L2-normalised."""
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered_vectors(n: int, dim: int, n_clusters: int = 50, spread: float = 0.6, seed: int = 0) -> np.ndarray:
    """float32 (n, dim) L2-normalised points around `n_clusters` random centres, like real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((n, dim)).astype(np.float32) * (spread / np.sqrt(dim))
    x = centres[rng.integers(0, n_clusters, n)] + noise
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_topk(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k: (scores float32 (Q, k), rows int (Q, k)), best first."""
    scores = queries @ vectors.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, axis=1), rows
