"""`IndexConfig`: which vector store backs the search engine and how it indexes.

An index is described by a FAISS factory string, as in FAISS itself: `"Flat"` is exact inner-product search
(the default), `"IVF4096,Flat"` and `"HNSW32"` are approximate and opt-in. The Milvus backend accepts the same
three shapes of string and maps them onto its FLAT, IVF_FLAT and HNSW indexes.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from videosearch.errors import ConfigError

BACKENDS = ("faiss", "milvus")
METRICS = ("ip",)
URI_SCHEMES = ("http://", "https://", "tcp://", "unix:")
_IVF_FLAT = re.compile(r"IVF(\d+),Flat")
_HNSW = re.compile(r"HNSW(\d+)")
_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


@dataclass
class IndexConfig:
    """How vectors are stored and searched.

    Vectors are L2-normalised embeddings, so inner product (`metric="ip"`) equals cosine similarity.
    """

    backend: str = field(default="faiss", metadata={"help": "'faiss' (embedded, default) or 'milvus'."})
    factory: str = field(
        default="Flat",
        metadata={"help": "FAISS factory string: 'Flat' (exact), 'IVF<nlist>,Flat' or 'HNSW<M>' (approximate)."},
    )
    metric: str = field(default="ip", metadata={"help": "Similarity; only 'ip' (inner product) is supported."})
    nprobe: int = field(default=16, metadata={"help": "IVF: inverted lists visited per query (recall vs speed)."})
    ef_search: int = field(default=128, metadata={"help": "HNSW: candidate list size per query (recall vs speed)."})
    uri: str | None = field(
        default=None,
        metadata={"help": "Milvus: None keeps a milvus-lite database inside the store directory; "
                  "else a server URI such as http://host:19530."},
    )
    collection: str = field(default="videosearch", metadata={"help": "Milvus collection name."})

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"index.backend={self.backend!r} is not supported; use one of {list(BACKENDS)}")
        if self.metric not in METRICS:
            raise ConfigError(
                f"index.metric={self.metric!r} is not supported; use 'ip' (inner product on L2-normalised vectors)"
            )
        if not isinstance(self.factory, str) or not self.factory.strip():
            raise ConfigError("index.factory is empty; use 'Flat' for exact search or e.g. 'IVF1024,Flat', 'HNSW32'")
        if "IDMap" in self.factory:
            raise ConfigError(
                f"index.factory={self.factory!r}: drop the 'IDMap' prefix, the store maps string ids itself"
            )
        for name in ("nprobe", "ef_search"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"index.{name}={value!r} must be a positive integer")
        if self.uri is not None and not self.uri.startswith(URI_SCHEMES):
            raise ConfigError(
                f"index.uri={self.uri!r} must start with one of {list(URI_SCHEMES)}; "
                "set it to None to keep a milvus-lite database inside the store directory"
            )
        if not _COLLECTION_NAME.fullmatch(self.collection):
            raise ConfigError(
                f"index.collection={self.collection!r} must be letters, digits and underscores, "
                "not starting with a digit, at most 255 characters"
            )
        if self.backend == "milvus":
            milvus_index_spec(self.factory)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IndexConfig:
        """Builds a config from a dict, rejecting unknown keys.

        Args:
            values: field name -> value, e.g. as read from YAML or a store's `config.json`.

        Returns:
            The validated config.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown index config keys {unknown}; known keys are {sorted(known)}")
        return cls(**values)


def milvus_index_spec(factory: str) -> tuple[str, dict[str, int]]:
    """Maps a FAISS factory string onto a Milvus index type and its build parameters.

    Args:
        factory: 'Flat', 'IVF<nlist>,Flat' or 'HNSW<M>'.

    Returns:
        (index_type, build_params), e.g. ("IVF_FLAT", {"nlist": 1024}).
    """
    if factory == "Flat":
        return "FLAT", {}
    ivf = _IVF_FLAT.fullmatch(factory)
    if ivf and int(ivf.group(1)) >= 1:
        return "IVF_FLAT", {"nlist": int(ivf.group(1))}
    hnsw = _HNSW.fullmatch(factory)
    if hnsw and int(hnsw.group(1)) >= 2:
        return "HNSW", {"M": int(hnsw.group(1)), "efConstruction": 200}
    raise ConfigError(
        f"index.factory={factory!r} has no Milvus equivalent; with backend 'milvus' use 'Flat', "
        "'IVF<nlist>,Flat' or 'HNSW<M>'"
    )
