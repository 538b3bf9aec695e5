"""FAISS backend of `VectorStore`: the embedded default, in memory, saved as `index.faiss` + `ids.npy`.

String ids map to int64 labels. Flat, HNSW and other non-IVF indexes sit inside an `IndexIDMap2`; IVF indexes
store labels natively with a hashtable direct map, because `IndexIDMap` over IVF breaks after a removal (IVF
does not renumber its internal ids the way the wrapper assumes). HNSW cannot remove vectors, so removing from an
HNSW store rebuilds the graph from the stored vectors: correct, O(N).

Exact search ("Flat") takes one of two paths, both BLAS matrix products. A batch of 16 or more queries runs
through FAISS's BLAS path with large database blocks (see `_blas_for_batches`): FAISS 1.15 only switches to BLAS
above 128,000 query floats (333 queries of 384-d), and its default 1,024-vector blocks thrash between OpenMP and
OpenBLAS threads on small machines. Fewer queries are scored with one numpy product over a zero-copy view of the
FAISS storage, which on 2 cores is 2-3x faster than FAISS for a single query. The store is not thread-safe for
writes: do not add or remove while another thread searches.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from videosearch.errors import ConfigError
from videosearch.index.base import (
    SearchResult,
    StoreError,
    UnknownIdError,
    VectorInputError,
    VectorStore,
    check_expected,
    read_store_config,
    split_store_config,
    write_store_dir,
)
from videosearch.index.config import IndexConfig

logger = logging.getLogger(__name__)

INDEX_NAME = "index.faiss"
IDS_NAME = "ids.npy"
LABELS_NAME = "labels.npy"
TRAIN_POINTS_PER_LIST = 64  # FAISS k-means wants 39-256 points per centroid; more only slows training.

_BLAS_MIN_QUERIES = 16  # fewer queries are scored with numpy (see the module docstring)
_BLAS_DATABASE_BLOCK = 65536
_BLAS_QUERY_BLOCK = 1024
_blas_lock = threading.Lock()


@contextmanager
def _blas_for_batches() -> Iterator[None]:
    """Makes exact FAISS search use one BLAS product per 65,536 stored vectors and up to 1,024 queries.

    These are process-wide FAISS settings, so they are set and restored under a lock; they change speed only,
    not results beyond float rounding.
    """
    with _blas_lock:
        cvar = faiss.cvar
        saved = (cvar.distance_compute_blas_threshold, cvar.distance_compute_blas_database_bs,
                 cvar.distance_compute_blas_query_bs)
        cvar.distance_compute_blas_threshold = 0
        cvar.distance_compute_blas_database_bs = _BLAS_DATABASE_BLOCK
        cvar.distance_compute_blas_query_bs = _BLAS_QUERY_BLOCK
        try:
            yield
        finally:
            (cvar.distance_compute_blas_threshold, cvar.distance_compute_blas_database_bs,
             cvar.distance_compute_blas_query_bs) = saved


def _new_index(factory: str, dim: int) -> faiss.Index:
    """An empty inner-product index for `factory` that accepts int64 labels."""
    try:
        inner = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[-1]
        raise ConfigError(f"index.factory={factory!r} cannot build a {dim}-d index: {reason}") from e
    ivf = faiss.try_extract_index_ivf(inner)
    if ivf is not None:
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        return inner
    return faiss.IndexIDMap2(inner)


class FaissStore(VectorStore):
    """In-memory FAISS vector store with string ids.

    Example:
        store = FaissStore(IndexConfig(), dim=384, model_id="mini-v1:abc")
        store.add(["v1", "v2"], vectors)  # float32 (2, 384)
        hits = store.search(query, k=5, exclude={"v1"})
        store.save("runs/x/index")
    """

    backend = "faiss"

    def __init__(self, config: IndexConfig, dim: int, model_id: str) -> None:
        super().__init__(config, dim, model_id)
        self._attach(_new_index(config.factory, self.dim), [], np.zeros(0, dtype=np.int64))

    def _attach(self, index: faiss.Index, ids: list[str], labels: np.ndarray) -> None:
        self._index = index
        self._label_of: dict[str, int] = dict(zip(ids, labels.tolist()))
        self._id_of: dict[int, str] = dict(zip(labels.tolist(), ids))
        self._next_label = int(labels.max()) + 1 if len(labels) else 0
        ivf = faiss.try_extract_index_ivf(index)
        inner = index if ivf is not None else faiss.downcast_index(index.index)
        self._is_flat = isinstance(inner, faiss.IndexFlat)
        self._rebuild_on_remove = isinstance(inner, faiss.IndexHNSW | faiss.IndexNSG)
        if ivf is not None:
            ivf.nprobe = self.config.nprobe
        if isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efSearch = self.config.ef_search

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> list[str]:
        return list(self._label_of)

    def _count_stored(self, ids: frozenset[str]) -> int:
        return sum(1 for i in ids if i in self._label_of)

    def _labels(self, ids: list[str]) -> np.ndarray:
        unknown = [i for i in ids if i not in self._label_of]
        if unknown:
            raise UnknownIdError(unknown)
        return np.fromiter((self._label_of[i] for i in ids), dtype=np.int64, count=len(ids))

    def _add(self, ids: list[str], vectors: np.ndarray) -> None:
        self._ensure_trained(vectors)
        replaced = [i for i in ids if i in self._label_of]
        if replaced:
            self._remove(replaced)
        labels = np.arange(self._next_label, self._next_label + len(ids), dtype=np.int64)
        self._index.add_with_ids(vectors, labels)
        self._next_label += len(ids)
        for item, label in zip(ids, labels.tolist()):
            self._label_of[item] = label
            self._id_of[label] = item

    def _ensure_trained(self, vectors: np.ndarray) -> None:
        """Trains an untrained index (IVF, PQ) on the first vectors added."""
        if self._index.is_trained:
            return
        ivf = faiss.try_extract_index_ivf(self._index)
        needed = ivf.nlist if ivf is not None else 1
        if len(vectors) < needed:
            raise VectorInputError(
                f"index.factory={self.config.factory!r} is trained on the first add, which needs at least "
                f"{needed} vectors (got {len(vectors)}); add more vectors in the first call, or use 'Flat'"
            )
        sample = vectors
        if ivf is not None and len(vectors) > TRAIN_POINTS_PER_LIST * ivf.nlist:
            rows = np.random.default_rng(0).choice(len(vectors), TRAIN_POINTS_PER_LIST * ivf.nlist, replace=False)
            sample = vectors[np.sort(rows)]
        logger.info("training %s on %d vectors", self.config.factory, len(sample))
        try:
            self._index.train(sample)
        except RuntimeError as e:
            reason = str(e).strip().splitlines()[-1]
            raise VectorInputError(
                f"training index.factory={self.config.factory!r} on {len(sample)} vectors failed: {reason}"
            ) from e

    def _remove(self, ids: list[str]) -> None:
        labels = self._labels(ids)
        if self._rebuild_on_remove:
            self._rebuild_without(labels)
        elif faiss.try_extract_index_ivf(self._index) is not None:
            # The hashtable direct map only removes through an explicit id array.
            removed = self._index.remove_ids(faiss.IDSelectorArray(len(labels), faiss.swig_ptr(labels)))
            assert removed == len(labels), (removed, len(labels))
        else:
            removed = self._index.remove_ids(labels)
            assert removed == len(labels), (removed, len(labels))
        for item, label in zip(ids, labels.tolist()):
            del self._label_of[item]
            del self._id_of[label]

    def _rebuild_without(self, labels: np.ndarray) -> None:
        """Rebuilds an index that cannot remove (HNSW) from its stored vectors, minus `labels`."""
        all_labels = faiss.vector_to_array(self._index.id_map)
        keep = ~np.isin(all_labels, labels)
        logger.info("rebuilding %s of %d vectors to remove %d", self.config.factory, len(all_labels), len(labels))
        vectors = self._index.index.reconstruct_n(0, len(all_labels))[keep]
        index = _new_index(self.config.factory, self.dim)
        if len(vectors):
            index.add_with_ids(vectors, all_labels[keep])
        ids = list(self._label_of)
        self._attach(index, ids, np.fromiter(self._label_of.values(), dtype=np.int64, count=len(ids)))

    def _get_vectors(self, ids: list[str]) -> np.ndarray:
        return self._index.reconstruct_batch(self._labels(ids)).astype(np.float32, copy=False)

    def _search(self, queries: np.ndarray, k: int, exclude: list[frozenset[str]] | None) -> SearchResult:
        excluded: dict[int, np.ndarray] = {}
        for item in exclude or []:
            if id(item) not in excluded:
                excluded[id(item)] = np.fromiter(
                    (self._label_of[i] for i in item if i in self._label_of), dtype=np.int64
                )
        extra = max((len(v) for v in excluded.values()), default=0)
        fetch = min(k + extra, len(self))
        if self._is_flat and len(queries) < _BLAS_MIN_QUERIES:
            scores, labels = self._numpy_flat_search(queries, fetch)
        elif self._is_flat:
            with _blas_for_batches():
                scores, labels = self._index.search(queries, fetch)
        else:
            scores, labels = self._index.search(queries, fetch)
        drop = labels < 0
        if exclude is not None:
            for row, item in enumerate(exclude):
                drop[row] |= np.isin(labels[row], excluded[id(item)])
        if fetch != k or drop.any():
            # Keep the first k kept hits of each row, in score order; rows short of k are padded with -inf.
            order = np.argsort(drop, axis=1, kind="stable")[:, :k]
            labels = np.take_along_axis(labels, order, axis=1)
            scores = np.take_along_axis(scores, order, axis=1)
            dropped = np.take_along_axis(drop, order, axis=1)
            labels[dropped] = -1
            scores[dropped] = -np.inf
        id_of = self._id_of
        ids = [[id_of[label] for label in row if label >= 0] for row in labels.tolist()]
        return SearchResult(ids=ids, scores=np.ascontiguousarray(scores, dtype=np.float32))

    def _numpy_flat_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of a few queries by one numpy product over the Flat storage; (scores, labels) (Q, k)."""
        n = len(self)
        flat = faiss.downcast_index(self._index.index)
        vectors = faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim)  # (N, D), no copy
        labels = faiss.rev_swig_ptr(self._index.id_map.data(), n)  # (N,), no copy
        scores = queries @ vectors.T  # (Q, N)
        rows = np.argpartition(scores, n - k, axis=1)[:, n - k:] if k < n else np.tile(np.arange(n), (len(queries), 1))
        top = np.take_along_axis(scores, rows, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1), labels[np.take_along_axis(rows, order, axis=1)]

    def _save(self, path: Path) -> None:
        ids = list(self._label_of)
        id_array = np.array(ids, dtype=str)
        labels = np.fromiter(self._label_of.values(), dtype=np.int64, count=len(ids))

        def write_data(tmp: Path) -> None:
            faiss.write_index(self._index, str(tmp / INDEX_NAME))
            np.save(tmp / IDS_NAME, id_array, allow_pickle=False)
            np.save(tmp / LABELS_NAME, labels, allow_pickle=False)

        write_store_dir(path, write_data, self.store_config())

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], expected_model_id: str | None = None, expected_dim: int | None = None
    ) -> FaissStore:
        """Opens a saved FAISS store (see `VectorStore.load`)."""
        path = Path(path)
        config, dim, model_id, count = split_store_config(path, read_store_config(path))
        if config.backend != cls.backend:
            raise StoreError(path, f"is a {config.backend!r} store, not a FAISS one; open it with open_store()")
        check_expected(path, model_id, dim, expected_model_id, expected_dim)
        try:
            index = faiss.read_index(str(path / INDEX_NAME))
            ids = np.load(path / IDS_NAME, allow_pickle=False).tolist()
            labels = np.load(path / LABELS_NAME, allow_pickle=False).astype(np.int64, copy=False)
        except (RuntimeError, OSError, ValueError) as e:
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise StoreError(path, f"cannot read the FAISS files ({reason}); rebuild the index") from e
        if (index.d, index.ntotal, len(ids), len(labels)) != (dim, count, count, count) or (
            index.metric_type != faiss.METRIC_INNER_PRODUCT
        ):
            raise StoreError(
                path,
                f"files disagree with config.json (index: {index.d}-d, {index.ntotal} vectors; ids: {len(ids)}; "
                f"config: {dim}-d, {count} vectors); rebuild the index",
            )
        store = cls.__new__(cls)
        VectorStore.__init__(store, config, dim, model_id)
        store._attach(index, ids, labels)
        return store
