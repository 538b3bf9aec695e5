"""FAISS store: add / replace / remove / search / exclude, exactness against numpy, ANN recall."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from index_testdata import clustered_vectors, numpy_topk, unit_vectors

from videosearch.errors import VideosearchError
from videosearch.index import FaissStore, IndexConfig, UnknownIdError, VectorInputError, create_store

DIM = 32


def make_store(n: int = 100, factory: str = "Flat", dim: int = DIM, seed: int = 0) -> tuple[FaissStore, np.ndarray]:
    store = create_store(IndexConfig(factory=factory), dim=dim, model_id="test:1")
    assert isinstance(store, FaissStore)
    vectors = unit_vectors(n, dim, seed)
    store.add([f"v{i}" for i in range(n)], vectors)
    return store, vectors


def test_add_and_search_returns_self_first() -> None:
    store, vectors = make_store()
    result = store.search(vectors[:3], k=4)
    assert [row[0] for row in result.ids] == ["v0", "v1", "v2"]
    assert result.scores.shape == (3, 4) and result.scores.dtype == np.float32
    assert np.all(np.diff(result.scores, axis=1) <= 0)
    np.testing.assert_allclose(result.scores[:, 0], 1.0, atol=1e-5)


def test_single_query_vector_gives_one_row() -> None:
    store, vectors = make_store()
    result = store.search(vectors[5], k=2)
    assert len(result.ids) == 1 and result.ids[0][0] == "v5" and result.scores.shape == (1, 2)


def test_re_adding_an_id_replaces_its_vector() -> None:
    store, vectors = make_store(10)
    new = unit_vectors(1, DIM, seed=99)
    store.add(["v3"], new)
    assert len(store) == 10
    np.testing.assert_array_equal(store.get_vectors(["v3"]), new)
    assert store.search(new, k=1).ids == [["v3"]]
    assert sorted(store.ids()) == sorted(f"v{i}" for i in range(10))


def test_remove_and_unknown_ids() -> None:
    store, vectors = make_store(10)
    store.remove(["v1", "v2"])
    assert len(store) == 8 and "v1" not in store and "v3" in store
    assert "v1" not in store.search(vectors[1], k=8).ids[0]
    with pytest.raises(UnknownIdError, match="'nope'") as info:
        store.remove(["v3", "nope"])
    assert isinstance(info.value, KeyError) and isinstance(info.value, VideosearchError)
    assert len(store) == 8 and "v3" in store  # nothing removed
    with pytest.raises(UnknownIdError):
        store.get_vectors(["v1"])


def test_get_vectors_in_requested_order() -> None:
    store, vectors = make_store(10)
    np.testing.assert_array_equal(store.get_vectors(["v7", "v2", "v7"]), vectors[[7, 2, 7]])
    assert store.get_vectors([]).shape == (0, DIM)


def test_exclude_one_set_for_all_queries_keeps_k() -> None:
    store, vectors = make_store(50)
    plain = store.search(vectors[:4], k=5)
    banned = {row[0] for row in plain.ids} | {"v10", "unknown-id"}
    result = store.search(vectors[:4], k=5, exclude=banned)
    assert all(len(row) == 5 and not banned & set(row) for row in result.ids)
    _, rows = numpy_topk(vectors[:4], vectors, 50)
    expected = [[f"v{r}" for r in row if f"v{r}" not in banned][:5] for row in rows]
    assert result.ids == expected


def test_exclude_per_query() -> None:
    store, vectors = make_store(50)
    exclude = [{"v0"}, set(), {"v2", "v3"}]
    result = store.search(vectors[:3], k=3, exclude=exclude)
    for row, banned in zip(result.ids, exclude):
        assert len(row) == 3 and not banned & set(row)
    assert result.ids[1][0] == "v1"
    with pytest.raises(VectorInputError, match="one collection per query"):
        store.search(vectors[:3], k=3, exclude=[{"v0"}, {"v1"}])


def test_k_larger_than_store_and_exclusion_shrinks_k() -> None:
    store, vectors = make_store(6)
    result = store.search(vectors[:2], k=100)
    assert result.scores.shape == (2, 6) and sorted(result.ids[0]) == sorted(store.ids())
    result = store.search(vectors[:2], k=100, exclude={"v0", "v1"})
    assert result.scores.shape == (2, 4) and all(len(row) == 4 for row in result.ids)
    empty = store.search(vectors[:2], k=3, exclude=store.ids())
    assert empty.ids == [[], []] and empty.scores.shape == (2, 0)


def test_empty_store_search() -> None:
    store = create_store(IndexConfig(), dim=DIM, model_id="test:1")
    result = store.search(unit_vectors(2, DIM), k=5)
    assert result.ids == [[], []] and result.scores.shape == (2, 0)


@pytest.mark.parametrize("n_queries", [1, 3, 40])  # 40 takes the BLAS batch path
def test_flat_equals_numpy_topk(n_queries: int) -> None:
    store, vectors = make_store(2000, dim=64, seed=1)
    queries = unit_vectors(n_queries, 64, seed=2)
    result = store.search(queries, k=10)
    scores, rows = numpy_topk(queries, vectors, 10)
    assert result.ids == [[f"v{r}" for r in row] for row in rows]
    np.testing.assert_allclose(result.scores, scores, atol=1e-5)


def test_blas_settings_are_restored_after_search() -> None:
    store, _ = make_store(100)
    before = faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_blas_database_bs
    store.search(unit_vectors(64, DIM), k=3)
    assert (faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_blas_database_bs) == before


@pytest.fixture(scope="module")
def clustered() -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    vectors = clustered_vectors(5000, 64, seed=3)
    queries = clustered_vectors(200, 64, seed=4)
    _, rows = numpy_topk(queries, vectors, 10)
    return vectors, queries, [[f"v{r}" for r in row] for row in rows]


@pytest.mark.parametrize("factory", ["IVF64,Flat", "HNSW32"])
def test_approximate_recall_at_10(factory: str, clustered: tuple) -> None:
    vectors, queries, exact = clustered
    store = create_store(IndexConfig(factory=factory, nprobe=8, ef_search=128), dim=64, model_id="test:1")
    store.add([f"v{i}" for i in range(len(vectors))], vectors)
    found = store.search(queries, k=10).ids
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])
    assert recall > 0.9, f"{factory} recall@10 {recall:.3f}"


@pytest.mark.parametrize("factory", ["IVF16,Flat", "HNSW16"])
def test_approximate_indexes_remove_replace_and_reconstruct(factory: str) -> None:
    store, vectors = make_store(400, factory=factory)
    store.remove(["v0", "v1"])
    new = unit_vectors(1, DIM, seed=7)
    store.add(["v2"], new)
    assert len(store) == 398 and "v0" not in store
    np.testing.assert_allclose(store.get_vectors(["v2", "v3"]), np.vstack([new, vectors[3:4]]), atol=1e-6)
    result = store.search(vectors[:2], k=5, exclude={"v4"})
    assert not {"v0", "v1", "v4"} & {i for row in result.ids for i in row}
    assert store.search(new, k=1).ids == [["v2"]]


def test_ivf_needs_enough_vectors_on_first_add() -> None:
    store = create_store(IndexConfig(factory="IVF64,Flat"), dim=DIM, model_id="test:1")
    with pytest.raises(VectorInputError, match="at least 64 vectors"):
        store.add([f"v{i}" for i in range(10)], unit_vectors(10, DIM))
    assert len(store) == 0


def test_bad_factory_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="index.factory='IVF4,PQ3'"):
        create_store(IndexConfig(factory="IVF4,PQ3"), dim=DIM, model_id="test:1")
