"""Milvus store on milvus-lite: same answers as exact FAISS, exclusion, odd ids, save -> load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from index_testdata import clustered_vectors, numpy_topk, unit_vectors

from videosearch.errors import IndexMismatchError
from videosearch.index import IndexConfig, StoreError, UnknownIdError, VectorStore, create_store, open_store

DIM = 384
N = 2000


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return unit_vectors(N, DIM, seed=11)


@pytest.fixture(scope="module")
def stores(vectors: np.ndarray) -> Iterator[tuple[VectorStore, VectorStore]]:
    ids = [f"v{i}" for i in range(N)]
    milvus = create_store(IndexConfig(backend="milvus"), dim=DIM, model_id="mini-v1:abc")
    faiss = create_store(IndexConfig(), dim=DIM, model_id="mini-v1:abc")
    for store in (milvus, faiss):
        store.add(ids, vectors)
    yield milvus, faiss
    milvus.close()


def test_same_top10_as_exact_faiss(stores: tuple[VectorStore, VectorStore]) -> None:
    milvus, faiss = stores
    queries = unit_vectors(20, DIM, seed=12)
    got, want = milvus.search(queries, k=10), faiss.search(queries, k=10)
    assert got.ids == want.ids
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)


def test_exclusion_matches_faiss(stores: tuple[VectorStore, VectorStore], vectors: np.ndarray) -> None:
    milvus, faiss = stores
    single = {"v0", "v5", "not-stored"}
    per_query = [{"v0"}, set(), {"v2", "v9"}, {"v0"}]
    for exclude in (single, per_query):
        got, want = milvus.search(vectors[:4], k=5, exclude=exclude), faiss.search(vectors[:4], k=5, exclude=exclude)
        assert got.ids == want.ids and got.scores.shape == (4, 5)
    assert milvus.search(vectors[:1], k=N + 10, exclude={"v1"}).scores.shape == (1, N - 1)


def test_len_ids_and_vectors(stores: tuple[VectorStore, VectorStore], vectors: np.ndarray) -> None:
    milvus, _ = stores
    assert len(milvus) == N and sorted(milvus.ids()) == sorted(f"v{i}" for i in range(N))
    np.testing.assert_array_equal(milvus.get_vectors(["v3", "v1", "v3"]), vectors[[3, 1, 3]])
    with pytest.raises(UnknownIdError, match="'nope'"):
        milvus.get_vectors(["v1", "nope"])


def test_add_replace_remove_with_odd_ids() -> None:
    store = create_store(IndexConfig(backend="milvus"), dim=8, model_id="m")
    odd = ['say "hi"', "back\\slash", "it's", "ünï€ode", "plain"]
    vectors = unit_vectors(5, 8, seed=1)
    store.add(odd, vectors)
    assert sorted(store.ids()) == sorted(odd)
    assert store.search(vectors[:3], k=1).ids == [[odd[0]], [odd[1]], [odd[2]]]
    assert odd[0] not in store.search(vectors[0], k=4, exclude=[odd[0]]).ids[0]
    new = unit_vectors(1, 8, seed=2)
    store.add([odd[1]], new)
    assert len(store) == 5
    np.testing.assert_array_equal(store.get_vectors([odd[1]]), new)
    with pytest.raises(UnknownIdError, match="'nope'"):
        store.remove([odd[2], "nope"])
    store.remove([odd[2], odd[0]])
    assert sorted(store.ids()) == sorted([odd[1], odd[3], odd[4]])
    store.close()


def test_save_load_round_trip_and_checks(tmp_path: Path) -> None:
    store = create_store(IndexConfig(backend="milvus"), dim=8, model_id="m")
    vectors = unit_vectors(30, 8, seed=3)
    store.add([f"v{i}" for i in range(30)], vectors)
    store.save(tmp_path / "index")
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == ["config.json", "milvus.db"]
    store.remove(["v0"])  # the store keeps working after save; the saved copy is unchanged
    loaded = open_store(tmp_path / "index", expected_model_id="m", expected_dim=8)
    assert len(loaded) == 30 and len(store) == 29
    assert [row[0] for row in loaded.search(vectors[:3], k=2).ids] == ["v0", "v1", "v2"]
    loaded.add(["extra"], unit_vectors(1, 8, seed=4))  # writes go to the loaded copy, not the saved directory
    with open_store(tmp_path / "index") as again:
        assert len(again) == 30
    with pytest.raises(IndexMismatchError, match="rebuild the index"):
        open_store(tmp_path / "index", expected_model_id="other")
    for s in (store, loaded):
        s.close()
    with pytest.raises(StoreError, match="closed"):
        len(store)


@pytest.mark.parametrize("factory", ["IVF16,Flat", "HNSW16"])
def test_approximate_milvus_indexes_recall(factory: str) -> None:
    vectors, queries = clustered_vectors(2000, 32, seed=1), clustered_vectors(20, 32, seed=2)
    _, rows = numpy_topk(queries, vectors, 10)
    store = create_store(IndexConfig(backend="milvus", factory=factory, nprobe=8, ef_search=64), dim=32, model_id="m")
    store.add([f"v{i}" for i in range(len(vectors))], vectors)
    found = store.search(queries, k=10).ids
    store.close()
    assert np.mean([len(set(a) & {f"v{r}" for r in row}) / 10 for a, row in zip(found, rows)]) > 0.9


def test_corrupt_milvus_lite_data_names_the_store(tmp_path: Path) -> None:
    store = create_store(IndexConfig(backend="milvus"), dim=8, model_id="m")
    store.add([f"v{i}" for i in range(5)], unit_vectors(5, 8, seed=3))
    store.save(tmp_path / "index")
    store.close()
    schema = next((tmp_path / "index" / "milvus.db").rglob("schema.json"))
    schema.write_text(schema.read_text()[:20])
    with pytest.raises(StoreError, match=rf"^{tmp_path / 'index'}: the milvus-lite data in milvus.db cannot"):
        open_store(tmp_path / "index")
