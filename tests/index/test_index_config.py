"""IndexConfig validation and the FAISS-factory -> Milvus index mapping."""

from __future__ import annotations

import pytest

from videosearch.errors import ConfigError
from videosearch.index import IndexConfig
from videosearch.index.config import milvus_index_spec


def test_defaults_are_exact_faiss() -> None:
    config = IndexConfig()
    assert (config.backend, config.factory, config.metric, config.uri) == ("faiss", "Flat", "ip", None)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"backend": "annoy"}, "index.backend"),
        ({"metric": "l2"}, "index.metric"),
        ({"factory": ""}, "index.factory"),
        ({"factory": "IDMap,Flat"}, "index.factory"),
        ({"nprobe": 0}, "index.nprobe"),
        ({"ef_search": True}, "index.ef_search"),
        ({"uri": "localhost:19530"}, "index.uri"),
        ({"collection": "9bad-name"}, "index.collection"),
        ({"backend": "milvus", "factory": "IVF256,PQ16"}, "index.factory"),
    ],
)
def test_bad_fields_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        IndexConfig(**kwargs)
    assert issubclass(ConfigError, ValueError)


def test_from_dict_round_trips_and_rejects_unknown_keys() -> None:
    config = IndexConfig(factory="HNSW32", ef_search=128)
    assert IndexConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown index config keys"):
        IndexConfig.from_dict({"backend": "faiss", "nlist": 4})


def test_milvus_index_spec() -> None:
    assert milvus_index_spec("Flat") == ("FLAT", {})
    assert milvus_index_spec("IVF1024,Flat") == ("IVF_FLAT", {"nlist": 1024})
    assert milvus_index_spec("HNSW32")[0] == "HNSW"
