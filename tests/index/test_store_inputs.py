"""Bad ids, vectors, queries, k and exclude give one clear error, the same for every backend."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from index_testdata import unit_vectors

from videosearch.errors import IndexMismatchError, VideosearchError
from videosearch.index import IndexConfig, VectorInputError, VectorStore, create_store

DIM = 16


@pytest.fixture(scope="module", params=["faiss", "milvus"])
def store(request: pytest.FixtureRequest) -> Iterator[VectorStore]:
    store = create_store(IndexConfig(backend=request.param), dim=DIM, model_id="test:1")
    store.add([f"v{i}" for i in range(20)], unit_vectors(20, DIM))
    yield store
    store.close()


def test_wrong_dimension_names_both(store: VectorStore) -> None:
    with pytest.raises(IndexMismatchError, match=r"dimension 8 .* 16-d"):
        store.add(["x"], unit_vectors(1, 8))
    with pytest.raises(IndexMismatchError, match=r"dimension 8 .* 16-d"):
        store.search(unit_vectors(2, 8), k=3)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_vectors_and_queries(store: VectorStore, bad: float) -> None:
    vectors = unit_vectors(3, DIM)
    vectors[1, 4] = bad
    with pytest.raises(VectorInputError, match=r"rows \[1\] contain NaN or infinite"):
        store.add(["a", "b", "c"], vectors)
    with pytest.raises(VectorInputError, match="NaN or infinite"):
        store.search(vectors, k=2)
    assert "a" not in store


@pytest.mark.parametrize(
    ("ids", "n_vectors", "message"),
    [
        (["a", ""], 2, "empty string"),
        (["a", "a"], 2, r"repeat within one call: \['a'\]"),
        (["a", "b"], 3, "2 ids but 3 vectors"),
        ([], 1, "0 ids but 1 vectors"),
        ("ab", 2, "not one string"),
        ([1, 2], 2, "must be strings"),
        (["a\nb"], 1, "control characters"),
        (["x" * 513], 1, "longer than 512"),
    ],
)
def test_bad_ids(store: VectorStore, ids: list, n_vectors: int, message: str) -> None:
    with pytest.raises(VectorInputError, match=message):
        store.add(ids, unit_vectors(n_vectors, DIM))
    assert len(store) == 20


def test_bad_shapes_and_k(store: VectorStore) -> None:
    with pytest.raises(VectorInputError, match="2-D array"):
        store.add(["a"], np.zeros((1, 2, DIM), dtype=np.float32))
    for k in (0, -1, True, 2.5):
        with pytest.raises(VectorInputError, match="k="):
            store.search(unit_vectors(1, DIM), k=k)
    with pytest.raises(VectorInputError, match="not a single string"):
        store.search(unit_vectors(1, DIM), k=1, exclude="v1")
    with pytest.raises(VectorInputError, match="mixes ids and collections"):
        store.search(unit_vectors(2, DIM), k=1, exclude=["v1", {"v2"}])


def test_errors_are_videosearch_errors() -> None:
    assert issubclass(VectorInputError, VideosearchError) and issubclass(VectorInputError, ValueError)
    assert issubclass(IndexMismatchError, VideosearchError)


def test_empty_add_is_a_no_op(store: VectorStore) -> None:
    store.add([], np.zeros((0, DIM), dtype=np.float32))
    assert len(store) == 20
