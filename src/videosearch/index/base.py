"""The `VectorStore` interface every backend implements, its errors, and the store-directory format.

A store maps string ids to float32 vectors of one embedder (`model_id`, `dim`) and answers top-k inner-product
queries. Backends implement the underscored hooks; the public methods here validate inputs once, so every
backend rejects the same bad calls with the same errors.

A saved store is a directory: backend data files plus `config.json`, which is written last. `save` builds the
directory beside the target (`folders.tmp_sibling`), fsyncs it and swaps it in with renames, so an interrupted save
leaves either the previous store or none, never a half-written one that loads.
"""

from __future__ import annotations

import json
import logging
import os
import unicodedata
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videosearch.errors import IndexMismatchError, VideosearchError
from videosearch.folders import aside_copies, publish_folder
from videosearch.index.config import IndexConfig

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
FORMAT_VERSION = 1
MAX_ID_BYTES = 512  # Milvus VARCHAR primary key limit; enforced for every backend so stores stay interchangeable.

ExcludeArg = Iterable[str] | Sequence[Iterable[str]] | None


class StoreError(VideosearchError):
    """A store directory is missing, incomplete or corrupt; names the path."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnknownIdError(VideosearchError, KeyError):
    """Ids that are not in the store."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = list(ids)
        shown = ", ".join(repr(i) for i in self.ids[:5]) + (f" and {len(self.ids) - 5} more" if len(ids) > 5 else "")
        super().__init__(f"ids not in the store: {shown}; call ids() to list the stored ids")

    def __str__(self) -> str:
        return str(self.args[0])


class VectorInputError(VideosearchError, ValueError):
    """Bad ids, vectors, queries or k passed to a store."""


@dataclass
class SearchResult:
    """Top-k hits of a batch of queries, best first.

    Attributes:
        ids: Q lists of stored ids.
        scores: float32 (Q, k') inner products, where k' = min(k, vectors left after exclusion). An approximate
            index may return fewer ids for a query; its missing scores are -inf.
    """

    ids: list[list[str]]
    scores: np.ndarray


class VectorStore(ABC):
    """A set of (string id, float32 vector) pairs of one embedder, searchable by inner product."""

    backend: str = ""

    def __init__(self, config: IndexConfig, dim: int, model_id: str) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise VectorInputError(f"dim={dim!r} must be a positive integer (the embedder's output size)")
        if not isinstance(model_id, str) or not model_id:
            raise VectorInputError(f"model_id={model_id!r} must name the embedder, e.g. 'mini-v1:<hash>'")
        if config.backend != self.backend:
            raise VectorInputError(f"config.backend={config.backend!r} but this is the {self.backend!r} store")
        self.config = config
        self._dim = int(dim)
        self._model_id = model_id

    @property
    def dim(self) -> int:
        """Dimension D of the stored vectors."""
        return self._dim

    @property
    def model_id(self) -> str:
        """The embedder that made the vectors, e.g. 'mini-v1:<hash>'."""
        return self._model_id

    @abstractmethod
    def __len__(self) -> int:
        """Number of stored vectors."""

    @abstractmethod
    def ids(self) -> list[str]:
        """All stored ids (FAISS: insertion order; Milvus: the server's order)."""

    @abstractmethod
    def _add(self, ids: list[str], vectors: np.ndarray) -> None:
        """Inserts or replaces validated, unique ids; vectors float32 C-contiguous (N, D)."""

    @abstractmethod
    def _remove(self, ids: list[str]) -> None:
        """Deletes validated, unique ids; raises UnknownIdError naming the ones not stored."""

    @abstractmethod
    def _get_vectors(self, ids: list[str]) -> np.ndarray:
        """float32 (N, D) vectors of validated ids; raises UnknownIdError for unknown ones."""

    @abstractmethod
    def _count_stored(self, ids: frozenset[str]) -> int:
        """How many of `ids` are stored."""

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int, exclude: list[frozenset[str]] | None) -> SearchResult:
        """Top-k of validated float32 (Q, D) queries; k >= 1 non-excluded vectors exist for every query.

        `exclude` has one set per query; queries that share a set share the same frozenset object.
        """

    @abstractmethod
    def _save(self, path: Path) -> None:
        """Writes the store atomically to `path` (see `write_store_dir`)."""

    @classmethod
    @abstractmethod
    def load(
        cls, path: str | os.PathLike[str], expected_model_id: str | None = None, expected_dim: int | None = None
    ) -> VectorStore:
        """Opens a saved store of this backend, checking it was built with the expected embedder.

        Args:
            path: the store directory.
            expected_model_id: the embedder that will make the queries; None skips the check.
            expected_dim: its output dimension; None skips the check.

        Returns:
            The store.
        """

    def close(self) -> None:
        """Releases connections and temporary files; the store is unusable afterwards."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str) and self._count_stored(frozenset([item])) == 1

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Inserts vectors; an id already stored has its vector replaced.

        Args:
            ids: N unique, non-empty ids (at most 512 UTF-8 bytes, no control characters).
            vectors: float32 (N, D) L2-normalised embeddings, all finite.
        """
        id_list = check_ids(ids, "add")
        matrix = self._check_matrix(vectors, "vectors")
        if len(matrix) != len(id_list):
            raise VectorInputError(f"add got {len(id_list)} ids but {len(matrix)} vectors; pass one id per row")
        if id_list:
            self._add(id_list, matrix)

    def remove(self, ids: Sequence[str]) -> None:
        """Deletes ids; raises UnknownIdError (and removes nothing) if any is not stored.

        Args:
            ids: unique stored ids.
        """
        id_list = check_ids(ids, "remove")
        if id_list:
            self._remove(id_list)

    def get_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Returns the stored vectors of `ids`, in that order.

        Args:
            ids: stored ids (repeats allowed).

        Returns:
            float32 (N, D).
        """
        id_list = check_ids(ids, "get_vectors", unique=False)
        if not id_list:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._get_vectors(id_list)

    def search(self, queries: np.ndarray, k: int, exclude: ExcludeArg = None) -> SearchResult:
        """Finds the k stored vectors with the highest inner product with each query.

        Args:
            queries: float32 (Q, D) or (D,) L2-normalised query vectors.
            k: hits per query, >= 1; larger than the store returns every vector.
            exclude: ids never to return: one collection for all queries, or a sequence of Q collections,
                one per query. Excluded ids do not count against k.

        Returns:
            SearchResult with Q rows of k' = min(k, stored vectors not excluded) hits (the minimum over queries
            when each query has its own exclusion set), best first.
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise VectorInputError(f"k={k!r} must be a positive integer")
        query_array = np.asarray(queries)
        matrix = self._check_matrix(query_array[None, :] if query_array.ndim == 1 else query_array, "queries")
        sets = normalise_exclude(exclude, len(matrix))
        remaining = len(self)
        if sets is not None:
            distinct = {id(s): s for s in sets}.values()
            remaining -= max(self._count_stored(s) for s in distinct)
        width = min(int(k), remaining)
        if width <= 0 or len(matrix) == 0:
            return SearchResult(ids=[[] for _ in range(len(matrix))],
                                scores=np.zeros((len(matrix), 0), dtype=np.float32))
        return self._search(matrix, width, sets)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the store to a directory, replacing a previous store there atomically.

        Args:
            path: the store directory; created if missing. An existing directory that is not a store is refused.
        """
        self._save(Path(path))

    def store_config(self) -> dict[str, Any]:
        """The `config.json` contents describing this store."""
        return {"format_version": FORMAT_VERSION, **self.config.to_dict(), "dim": self.dim,
                "model_id": self.model_id, "count": len(self)}

    def _check_matrix(self, array: np.ndarray, name: str) -> np.ndarray:
        """Validates a (N, D) array and returns it as C-contiguous float32."""
        matrix = np.asarray(array)
        if matrix.ndim != 2:
            raise VectorInputError(f"{name} must be a 2-D array (N, {self.dim}), got shape {matrix.shape}")
        if matrix.shape[1] != self.dim:
            raise IndexMismatchError(
                f"{name} have dimension {matrix.shape[1]} but the store holds {self.dim}-d vectors of "
                f"{self.model_id!r}; embed with that model or rebuild the index with the new embedder"
            )
        if not np.issubdtype(matrix.dtype, np.number) or np.iscomplexobj(matrix):
            raise VectorInputError(f"{name} must be real numbers, got dtype {matrix.dtype}")
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        finite = np.isfinite(matrix).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise VectorInputError(
                f"{name} rows {bad[:5].tolist()} contain NaN or infinite values (or overflow float32); "
                "fix the embedder output before indexing or searching"
            )
        return matrix


def id_problem(item: str) -> str | None:
    """Why a string cannot be a stored id (empty, not UTF-8, too long, control characters), or None if it can."""
    if not item:
        return "an id is the empty string; give every vector a non-empty id"
    try:
        size = len(item.encode("utf-8"))
    except UnicodeEncodeError:
        return f"id {item!r} is not valid UTF-8 (a lone surrogate); use UTF-8 text"
    if size > MAX_ID_BYTES:
        return f"id {item[:40]!r}... is longer than {MAX_ID_BYTES} UTF-8 bytes"
    if any(unicodedata.category(ch) == "Cc" for ch in item):
        return f"id {item!r} contains control characters; use printable ids"
    return None


def check_ids(ids: Sequence[str], what: str, unique: bool = True) -> list[str]:
    """Validates ids and returns them as a list.

    Args:
        ids: the ids of one call.
        what: the calling method, for messages.
        unique: refuse repeated ids.

    Returns:
        The ids as a list of str.
    """
    if isinstance(ids, str | bytes):
        raise VectorInputError(f"{what} takes a sequence of ids, not one string; wrap it: [{ids!r}]")
    id_list = list(ids)
    for item in id_list:
        if not isinstance(item, str):
            raise VectorInputError(f"{what}: ids must be strings, got {type(item).__name__} {item!r}")
        problem = id_problem(item)
        if problem:
            raise VectorInputError(f"{what}: {problem}")
    if unique and len(set(id_list)) != len(id_list):
        repeated = sorted(i for i, n in Counter(id_list).items() if n > 1)
        raise VectorInputError(f"{what}: ids repeat within one call: {repeated[:5]}; pass each id once")
    return id_list


def normalise_exclude(exclude: ExcludeArg, n_queries: int) -> list[frozenset[str]] | None:
    """Turns `search`'s `exclude` into one frozenset per query (shared objects for a shared set).

    Args:
        exclude: None, one collection of ids, or a sequence of `n_queries` collections.
        n_queries: Q.

    Returns:
        Q frozensets, or None when nothing is excluded.
    """
    if exclude is None:
        return None
    if isinstance(exclude, str | bytes):
        raise VectorInputError("exclude must be a collection of ids (or one per query), not a single string")
    items = list(exclude)
    if not items:
        return None
    nested = [not isinstance(x, str) and isinstance(x, Iterable) for x in items]
    if all(nested):
        if len(items) != n_queries:
            raise VectorInputError(
                f"exclude has {len(items)} collections but there are {n_queries} queries; "
                "pass one collection per query, or a flat collection of ids for all queries"
            )
        sets = []
        for item in items:
            if isinstance(item, str | bytes):
                raise VectorInputError("each per-query exclude must be a collection of ids, not a string")
            sets.append(frozenset(check_ids(list(item), "exclude", unique=False)))
        if not any(sets):
            return None
        shared: dict[frozenset[str], frozenset[str]] = {}
        return [shared.setdefault(s, s) for s in sets]
    if any(nested):
        raise VectorInputError("exclude mixes ids and collections; pass ids, or one collection per query")
    single = frozenset(check_ids(items, "exclude", unique=False))
    return [single] * n_queries


def write_store_dir(path: Path, write_data: Callable[[Path], None], config: dict[str, Any]) -> None:
    """Writes a store directory atomically: data first, `config.json` last, then a rename swap.

    Args:
        path: the final store directory. If it exists it must be a store (has `config.json`) or empty.
        write_data: writes the backend's data files into the directory it is given.
        config: the `config.json` contents.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise StoreError(path, "is a file; choose a directory path for the store")
        if not (path / CONFIG_NAME).is_file() and any(path.iterdir()):
            raise StoreError(path, "exists and is not a vector store; refusing to replace it, choose another path")
    def write(folder: Path) -> None:
        write_data(folder)
        with open(folder / CONFIG_NAME, "w", encoding="utf-8") as f:  # last: a folder holding it is complete
            json.dump(config, f, indent=2)
            f.write("\n")

    publish_folder(path, write)
    logger.debug("saved %s store of %d vectors to %s", config.get("backend"), config.get("count", 0), path)


def read_store_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads and checks a store directory's `config.json`.

    Args:
        path: the store directory.

    Returns:
        The parsed config.json.
    """
    path = Path(path)
    if not path.is_dir():
        aside = aside_copies(path)
        hint = (f"; an interrupted save left the previous store at {aside[0]}, rename it to {path}" if aside
                else "; build the index first")
        raise StoreError(path, "no such store directory" + hint)
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise StoreError(path, f"no {CONFIG_NAME}: not a vector store, or a save that did not finish; rebuild it")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreError(path, f"{CONFIG_NAME} is unreadable ({e}); rebuild the index") from e
    if not isinstance(config, dict):
        raise StoreError(path, f"{CONFIG_NAME} is not a JSON object; rebuild the index")
    missing = sorted({"format_version", "backend", "dim", "model_id", "count"} - set(config))
    if missing:
        raise StoreError(path, f"{CONFIG_NAME} lacks {missing}; rebuild the index")
    if config["format_version"] != FORMAT_VERSION:
        raise StoreError(
            path, f"store format {config['format_version']!r} is not {FORMAT_VERSION}; rebuild it with this version"
        )
    return config


def split_store_config(path: Path, config: dict[str, Any]) -> tuple[IndexConfig, int, str, int]:
    """Splits a `config.json` dict into (IndexConfig, dim, model_id, count)."""
    rest = {k: v for k, v in config.items() if k not in {"format_version", "dim", "model_id", "count"}}
    try:
        index_config = IndexConfig.from_dict(rest)
    except ValueError as e:
        raise StoreError(path, f"{CONFIG_NAME} has a bad index config: {e}") from e
    return index_config, int(config["dim"]), str(config["model_id"]), int(config["count"])


def check_expected(
    path: Path, model_id: str, dim: int, expected_model_id: str | None, expected_dim: int | None
) -> None:
    """Raises IndexMismatchError when a store was built by another embedder than the caller's."""
    if (expected_model_id is None or expected_model_id == model_id) and (expected_dim is None or expected_dim == dim):
        return
    want = expected_model_id if expected_model_id is not None else model_id
    want_dim = expected_dim if expected_dim is not None else dim
    raise IndexMismatchError(
        f"{path}: the index was built with model {model_id!r} ({dim}-d vectors) but the embedder in use is "
        f"{want!r} ({want_dim}-d); rebuild the index with this embedder, or use the matching embedder {model_id!r}"
    )
