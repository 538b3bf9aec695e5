"""Vector stores: string ids -> L2-normalised float32 embeddings, searched by inner product.

    store = create_store(IndexConfig(), dim=384, model_id="mini-v1:abc")  # FAISS "Flat": exact
    store.add(video_ids, vectors)                                         # float32 (N, 384)
    hits = store.search(query_vectors, k=10, exclude={"v7"})            # SearchResult(ids, scores)
    store.save("runs/x/index")
    store = open_store("runs/x/index", expected_model_id="mini-v1:abc", expected_dim=384)

FAISS is the embedded default; Milvus (milvus-lite in the store directory, or a server URI) is the scale-out
backend behind the same `VectorStore` interface. The Milvus backend is imported only when used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videosearch.index.base import (
    SearchResult,
    StoreError,
    UnknownIdError,
    VectorInputError,
    VectorStore,
    read_store_config,
)
from videosearch.index.config import IndexConfig
from videosearch.index.faiss_store import FaissStore

if TYPE_CHECKING:
    from videosearch.index.milvus_store import MilvusStore

__all__ = [
    "FaissStore",
    "IndexConfig",
    "MilvusStore",
    "SearchResult",
    "StoreError",
    "UnknownIdError",
    "VectorInputError",
    "VectorStore",
    "create_store",
    "open_store",
]


def _backend_class(backend: str) -> type[VectorStore]:
    if backend == "milvus":
        from videosearch.index.milvus_store import MilvusStore

        return MilvusStore
    return FaissStore


def create_store(config: IndexConfig, dim: int, model_id: str) -> VectorStore:
    """Creates an empty store of `config.backend`.

    Args:
        config: backend, factory and search settings.
        dim: dimension D of the vectors (the embedder's output size).
        model_id: the embedder that makes the vectors, e.g. "mini-v1:<hash>"; checked again on `open_store`.

    Returns:
        An empty `VectorStore`.
    """
    return _backend_class(config.backend)(config, dim, model_id)


def open_store(
    path: str | os.PathLike[str], expected_model_id: str | None = None, expected_dim: int | None = None
) -> VectorStore:
    """Opens a saved store, whichever backend its `config.json` names.

    Args:
        path: the store directory written by `VectorStore.save`.
        expected_model_id: the embedder that will make the queries; a different one raises IndexMismatchError.
        expected_dim: its output dimension; a different one raises IndexMismatchError.

    Returns:
        The store.
    """
    backend = read_store_config(path)["backend"]
    if backend not in ("faiss", "milvus"):
        raise StoreError(path, f"unknown backend {backend!r} in config.json; rebuild the index")
    return _backend_class(backend).load(Path(path), expected_model_id, expected_dim)


def __getattr__(name: str) -> Any:
    if name == "MilvusStore":
        return _backend_class("milvus")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
