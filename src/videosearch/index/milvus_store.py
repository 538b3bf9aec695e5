"""Milvus backend of `VectorStore`: the scale-out option, or milvus-lite in a file for local use.

Collection schema: `id` VARCHAR(512) primary key and `vector` FLOAT_VECTOR(dim), inner-product metric, with the
index that `IndexConfig.factory` maps to (FLAT, IVF_FLAT or HNSW; see `config.milvus_index_spec`).

With `IndexConfig.uri=None` the data is a milvus-lite database (`milvus.db/`) inside the store directory.
milvus-lite 3 runs in-process (a gRPC server on a thread) and writes to its data directory while open, so a
store works on a private copy in a temporary directory: `load` copies the saved database there and `save`
stops the server, copies the database into the new store directory and swaps it in (see `write_store_dir`).
The saved directory is therefore never written outside `save`. milvus-lite keeps fresh writes in a memtable
that every read scans slowly (about 2 s per call at 50,000 x 384-d), so the store flushes it before the first
read after a write. With a server URI the data lives on the server; `save` writes only `config.json` (URI,
collection, embedder) and every change is live at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException
from pymilvus.exceptions import ConnectionConfigException

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
from videosearch.index.config import IndexConfig, milvus_index_spec

logger = logging.getLogger(__name__)

DB_NAME = "milvus.db"
MAX_TOPK = 16384  # Milvus returns at most this many hits per query (and reads at most this many rows per query)
_IDS_PER_EXPR = 1000
_ROWS_PER_INSERT = 4096
_QUERIES_PER_SEARCH = 1024
_STRONG = "Strong"


def quote_id(item: str) -> str:
    """A Milvus filter-expression string literal for `item` (double-quoted, `\\` and `"` escaped)."""
    return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'


def id_filter(ids: Sequence[str], negate: bool = False) -> str:
    """`id in [...]` (or `id not in [...]`) for a Milvus filter."""
    return f"id {'not in' if negate else 'in'} [{', '.join(quote_id(i) for i in ids)}]"


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _Connection:
    """A MilvusClient and, for milvus-lite, the in-process server and private working directory behind it."""

    def __init__(self, uri: str | None, workdir: Path | None, collection: str) -> None:
        self.uri = uri
        self.collection = collection
        self.workdir = workdir
        self.db_path = workdir / DB_NAME if workdir is not None else None
        self.client: MilvusClient | None = None
        try:
            self.open()
        except BaseException:
            self.close()
            raise

    @property
    def target(self) -> str:
        return str(self.db_path) if self.db_path is not None else str(self.uri)

    def open(self) -> None:
        """Connects and loads the collection, if it exists, into memory (a reopened one starts released)."""
        try:
            self.client = MilvusClient(self.target)
            if self.client.has_collection(self.collection):
                self.client.load_collection(self.collection)
        except (MilvusException, ConnectionConfigException) as e:
            raise StoreError(self.target, f"cannot connect to Milvus ({e}); check the URI and that it runs") from e

    def release(self) -> None:
        """Closes the client and stops a milvus-lite server, leaving its files complete and unlocked."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.db_path is not None:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(str(self.db_path))

    def close(self) -> None:
        self.release()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


class MilvusStore(VectorStore):
    """Vector store in a Milvus collection (milvus-lite inside the store directory, or a server).

    Example:
        store = MilvusStore(IndexConfig(backend="milvus"), dim=384, model_id="mini-v1:abc")
        store.add(ids, vectors)
        store.save("runs/x/index")
        store.close()
    """

    backend = "milvus"

    def __init__(self, config: IndexConfig, dim: int, model_id: str) -> None:
        super().__init__(config, dim, model_id)
        self._connect(None if config.uri else Path(tempfile.mkdtemp(prefix="videosearch-milvus-")))
        if self._client.has_collection(config.collection):
            self.close()
            raise StoreError(
                config.uri, f"collection {config.collection!r} already exists; choose another index.collection, "
                "or open its saved store with open_store()"
            )
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        index_type, build_params = milvus_index_spec(config.factory)
        params: dict[str, Any] = dict(build_params)
        if config.uri is None and build_params:
            # milvus-lite 3.2 reads build parameters only from a JSON "params" entry, where pymilvus 3 sends each
            # parameter as its own entry (which a server reads); without this it silently uses its defaults.
            params = {"params": build_params}
        index_params = self._client.prepare_index_params()
        index_params.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=params)
        self._client.create_collection(config.collection, schema=schema, consistency_level=_STRONG)
        # sync=False: pymilvus's wait for an index on an empty collection sleeps 0.5 s and asks milvus-lite for
        # a timestamp it does not implement (logged as a server error).
        self._client.create_index(config.collection, index_params, sync=False)
        self._client.load_collection(config.collection)

    def _connect(self, workdir: Path | None) -> None:
        conn = _Connection(self.config.uri, workdir, self.config.collection)
        self._conn = conn
        self._unflushed = False
        self._finalizer = weakref.finalize(self, conn.close)

    @property
    def _client(self) -> MilvusClient:
        if self._conn.client is None:
            raise StoreError(self._conn.target, "the store is closed; open it again with open_store()")
        return self._conn.client

    @property
    def _reader(self) -> MilvusClient:
        """The client, after flushing milvus-lite's memtable if a write happened since the last read."""
        client = self._client
        if self._unflushed:
            client.flush(self.config.collection)
            self._unflushed = False
        return client

    def _wrote(self) -> None:
        self._unflushed = self._conn.db_path is not None

    def close(self) -> None:
        self._finalizer()

    def __len__(self) -> int:
        rows = self._reader.query(
            self.config.collection, filter="", output_fields=["count(*)"], consistency_level=_STRONG
        )
        return int(rows[0]["count(*)"])

    def ids(self) -> list[str]:
        count = len(self)
        if count <= MAX_TOPK or self._conn.db_path is not None:  # milvus-lite has no limit on query sizes
            rows = self._reader.query(
                self.config.collection, filter="", output_fields=["id"], limit=max(count, 1),
                consistency_level=_STRONG,
            )
            return [row["id"] for row in rows]
        # pymilvus's iterator pages by quoting the last id itself, without escaping: ids holding a double quote
        # or a backslash break it on a server.
        iterator = self._reader.query_iterator(self.config.collection, batch_size=MAX_TOPK, output_fields=["id"])
        ids: list[str] = []
        try:
            while batch := iterator.next():
                ids.extend(row["id"] for row in batch)
        finally:
            iterator.close()
        return ids

    def _existing(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(ids, _IDS_PER_EXPR):
            rows = self._reader.query(
                self.config.collection, filter=id_filter(chunk), output_fields=["id"], limit=len(chunk),
                consistency_level=_STRONG,
            )
            found.update(row["id"] for row in rows)
        return found

    def _count_stored(self, ids: frozenset[str]) -> int:
        return len(self._existing(sorted(ids)))

    def _add(self, ids: list[str], vectors: np.ndarray) -> None:
        for start in range(0, len(ids), _ROWS_PER_INSERT):
            stop = start + _ROWS_PER_INSERT
            rows = [{"id": item, "vector": vector} for item, vector in zip(ids[start:stop], vectors[start:stop])]
            self._client.upsert(self.config.collection, data=rows)
            self._wrote()

    def _remove(self, ids: list[str]) -> None:
        existing = self._existing(ids)
        unknown = [i for i in ids if i not in existing]
        if unknown:
            raise UnknownIdError(unknown)
        for chunk in _chunks(ids, _IDS_PER_EXPR):
            self._client.delete(self.config.collection, filter=id_filter(chunk))
            self._wrote()

    def _get_vectors(self, ids: list[str]) -> np.ndarray:
        unique = list(dict.fromkeys(ids))
        found: dict[str, Any] = {}
        for chunk in _chunks(unique, _IDS_PER_EXPR):
            rows = self._reader.query(
                self.config.collection, filter=id_filter(chunk), output_fields=["id", "vector"], limit=len(chunk),
                consistency_level=_STRONG,
            )
            found.update((row["id"], row["vector"]) for row in rows)
        unknown = [i for i in unique if i not in found]
        if unknown:
            raise UnknownIdError(unknown)
        return np.asarray([found[i] for i in ids], dtype=np.float32).reshape(len(ids), self.dim)

    def _search_params(self, k: int) -> dict[str, Any]:
        index_type, _ = milvus_index_spec(self.config.factory)
        params: dict[str, int] = {}
        if index_type == "IVF_FLAT":
            params = {"nprobe": self.config.nprobe}
        elif index_type == "HNSW":
            params = {"ef": max(self.config.ef_search, k)}  # Milvus requires ef >= k
        return {"metric_type": "IP", "params": params}

    def _search(self, queries: np.ndarray, k: int, exclude: list[frozenset[str]] | None) -> SearchResult:
        if k > MAX_TOPK:
            raise VectorInputError(
                f"k={k} exceeds Milvus's limit of {MAX_TOPK} hits per query; use a smaller k or the faiss backend"
            )
        groups: dict[int, tuple[frozenset[str], list[int]]] = {}
        for row, item in enumerate(exclude or [frozenset()] * len(queries)):
            groups.setdefault(id(item), (item, []))[1].append(row)
        ids: list[list[str]] = [[] for _ in range(len(queries))]
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        search_params = self._search_params(k)
        for item, rows in groups.values():
            expr = id_filter(sorted(item), negate=True) if item else ""
            for chunk in _chunks(rows, _QUERIES_PER_SEARCH):
                hits = self._reader.search(
                    self.config.collection, data=list(queries[list(chunk)]), limit=k, filter=expr,
                    output_fields=["id"], search_params=search_params, consistency_level=_STRONG,
                )
                for row, row_hits in zip(chunk, hits):
                    ids[row] = [hit["id"] for hit in row_hits]
                    scores[row, :len(row_hits)] = [hit["distance"] for hit in row_hits]
        return SearchResult(ids=ids, scores=scores)

    def _save(self, path: Path) -> None:
        config = self.store_config()
        db_path = self._conn.db_path
        if db_path is None:
            write_store_dir(path, lambda tmp: None, config)
            return

        def write_data(tmp: Path) -> None:
            shutil.copytree(db_path, tmp / DB_NAME, ignore=shutil.ignore_patterns("LOCK"))

        self._conn.release()
        try:
            write_store_dir(path, write_data, config)
        finally:
            self._conn.open()

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], expected_model_id: str | None = None, expected_dim: int | None = None
    ) -> MilvusStore:
        """Opens a saved Milvus store (see `VectorStore.load`); milvus-lite data is copied to a private dir."""
        path = Path(path)
        config, dim, model_id, count = split_store_config(path, read_store_config(path))
        if config.backend != cls.backend:
            raise StoreError(path, f"is a {config.backend!r} store, not a Milvus one; open it with open_store()")
        check_expected(path, model_id, dim, expected_model_id, expected_dim)
        store = cls.__new__(cls)
        VectorStore.__init__(store, config, dim, model_id)
        workdir = None
        if config.uri is None:
            if not (path / DB_NAME).is_dir():
                raise StoreError(path, f"no {DB_NAME} directory: the milvus-lite data is missing; rebuild the index")
            workdir = Path(tempfile.mkdtemp(prefix="videosearch-milvus-"))
            try:
                shutil.copytree(path / DB_NAME, workdir / DB_NAME, ignore=shutil.ignore_patterns("LOCK"))
            except BaseException:
                shutil.rmtree(workdir, ignore_errors=True)
                raise
        try:
            store._connect(workdir)
        except StoreError as e:
            if workdir is None:
                raise
            raise StoreError(path, f"the milvus-lite data in {DB_NAME} cannot be opened ({e.reason}); "
                             "rebuild the index") from None
        store._check_collection(path, count)
        return store

    def _check_collection(self, path: Path, count: int) -> None:
        """Checks that the opened collection is the one config.json describes."""
        try:
            if not self._client.has_collection(self.config.collection):
                raise StoreError(path, f"collection {self.config.collection!r} is missing in {self._conn.target}; "
                                 "rebuild the index")
            fields = self._client.describe_collection(self.config.collection)["fields"]
            dims = [int(f["params"]["dim"]) for f in fields if f["name"] == "vector"]
            live = len(self)
        except MilvusException as e:
            self.close()
            raise StoreError(path, f"cannot read the Milvus collection ({e}); rebuild the index") from e
        except StoreError:
            self.close()
            raise
        if dims != [self.dim] or (self.config.uri is None and live != count):
            self.close()
            raise StoreError(path, f"the collection ({dims} dims, {live} vectors) disagrees with config.json "
                             f"({self.dim} dims, {count} vectors); rebuild the index")
