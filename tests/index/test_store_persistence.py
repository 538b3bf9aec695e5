"""save -> load round trips, embedder checks, broken directories, and saves interrupted halfway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from index_testdata import unit_vectors

from videosearch import folders
from videosearch.errors import IndexMismatchError
from videosearch.folders import aside_sibling, tmp_sibling
from videosearch.index import FaissStore, IndexConfig, StoreError, create_store, open_store
from videosearch.index import base as base_module
from videosearch.index import faiss_store as faiss_module

DIM = 16


def make_store(n: int = 300, factory: str = "Flat", seed: int = 0) -> tuple[FaissStore, np.ndarray]:
    store = create_store(IndexConfig(factory=factory, nprobe=4), dim=DIM, model_id="mini-v1:abc")
    assert isinstance(store, FaissStore)
    vectors = unit_vectors(n, DIM, seed)
    store.add([f"v{i}" for i in range(n)], vectors)
    return store, vectors


def assert_same_store(a: FaissStore, b: FaissStore, queries: np.ndarray) -> None:
    assert (a.dim, a.model_id, a.config, len(a), a.ids()) == (b.dim, b.model_id, b.config, len(b), b.ids())
    np.testing.assert_array_equal(a.get_vectors(a.ids()), b.get_vectors(b.ids()))
    ra, rb = a.search(queries, k=5, exclude={"v3"}), b.search(queries, k=5, exclude={"v3"})
    assert ra.ids == rb.ids
    np.testing.assert_array_equal(ra.scores, rb.scores)


@pytest.mark.parametrize("factory", ["Flat", "IVF8,Flat", "HNSW16"])
def test_round_trip(tmp_path: Path, factory: str) -> None:
    store, vectors = make_store(factory=factory)
    store.remove(["v7"])
    store.add(["v8"], unit_vectors(1, DIM, seed=5))
    store.save(tmp_path / "index")
    config = json.loads((tmp_path / "index" / "config.json").read_text())
    assert config | {"count": 299, "backend": "faiss", "factory": factory, "dim": DIM} == config
    loaded = open_store(tmp_path / "index", expected_model_id="mini-v1:abc", expected_dim=DIM)
    assert isinstance(loaded, FaissStore)
    assert_same_store(store, loaded, vectors[:4])
    loaded.add(["new"], unit_vectors(1, DIM, seed=6))  # a loaded store keeps working
    assert "new" in loaded and len(loaded) == 300


def test_save_replaces_a_previous_store_and_leaves_no_temporaries(tmp_path: Path) -> None:
    store, _ = make_store(10)
    store.save(tmp_path / "index")
    store.remove(["v0"])
    store.save(tmp_path / "index")
    assert len(open_store(tmp_path / "index")) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


@pytest.mark.parametrize(
    ("model_id", "dim"), [("other-v2:def", None), (None, 32), ("other-v2:def", 32)]
)
def test_other_embedder_is_refused(tmp_path: Path, model_id: str | None, dim: int | None) -> None:
    store, _ = make_store(10)
    store.save(tmp_path / "index")
    with pytest.raises(IndexMismatchError) as info:
        open_store(tmp_path / "index", expected_model_id=model_id, expected_dim=dim)
    message = str(info.value)
    assert "'mini-v1:abc' (16-d" in message and "rebuild the index" in message and "matching embedder" in message
    assert f"'{model_id or 'mini-v1:abc'}' ({dim or 16}-d)" in message


def test_missing_and_broken_directories_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=f"{tmp_path / 'nowhere'}: no such store"):
        open_store(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match=r"empty: no config.json"):
        open_store(tmp_path / "empty")
    store, _ = make_store(10)
    store.save(tmp_path / "index")
    (tmp_path / "index" / "index.faiss").write_bytes(b"not an index")
    with pytest.raises(StoreError, match="cannot read the FAISS files"):
        open_store(tmp_path / "index")
    store.save(tmp_path / "index")
    config = json.loads((tmp_path / "index" / "config.json").read_text())
    (tmp_path / "index" / "config.json").write_text(json.dumps(config | {"count": 11}))
    with pytest.raises(StoreError, match="disagree with config.json"):
        open_store(tmp_path / "index")
    (tmp_path / "index" / "config.json").write_text("{")
    with pytest.raises(StoreError, match="config.json is unreadable"):
        open_store(tmp_path / "index")


def test_save_refuses_to_replace_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "metrics.json").write_text("{}")
    store, _ = make_store(10)
    with pytest.raises(StoreError, match="not a vector store"):
        store.save(tmp_path / "results")
    assert (tmp_path / "results" / "metrics.json").read_text() == "{}"


def test_interrupted_save_keeps_the_previous_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, vectors = make_store(50)
    old.save(tmp_path / "index")
    new, _ = make_store(80, seed=1)

    def write_half_then_die(index: object, path: str) -> None:
        Path(path).write_bytes(b"half an index")
        raise KeyboardInterrupt

    monkeypatch.setattr(faiss_module.faiss, "write_index", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path / "index")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # the temporary directory was removed
    assert_same_store(old, open_store(tmp_path / "index"), vectors[:3])

    # A process killed mid-save cannot clean up: its temporary directory stays, and does not load.
    monkeypatch.setattr(folders.shutil, "rmtree", lambda *args, **kwargs: None)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path / "index")
    leftover = tmp_sibling(tmp_path / "index")
    assert (leftover / "index.faiss").read_bytes() == b"half an index"
    with pytest.raises(StoreError, match="no config.json"):
        open_store(leftover)
    assert_same_store(old, open_store(tmp_path / "index"), vectors[:3])


def test_crash_between_the_two_renames_points_at_the_previous_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, _ = make_store(20)
    old.save(tmp_path / "index")
    real_rename = os.rename
    calls = []

    def rename_then_die(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_rename(src, dst)

    monkeypatch.setattr(base_module.os, "rename", rename_then_die)
    with pytest.raises(KeyboardInterrupt):
        old.save(tmp_path / "index")
    monkeypatch.undo()
    aside = aside_sibling(tmp_path / "index")
    with pytest.raises(StoreError, match=f"previous store at {aside}"):
        open_store(tmp_path / "index")
    assert len(open_store(aside)) == 20


@pytest.mark.parametrize("factory", ["Flat", "IVF8,Flat"])
def test_empty_store_round_trip_and_trains_later(tmp_path: Path, factory: str) -> None:
    store = create_store(IndexConfig(factory=factory), dim=DIM, model_id="m")
    store.save(tmp_path / "index")
    loaded = open_store(tmp_path / "index")
    assert len(loaded) == 0 and loaded.ids() == [] and loaded.search(unit_vectors(1, DIM), k=3).ids == [[]]
    vectors = unit_vectors(100, DIM)
    loaded.add([f"v{i}" for i in range(100)], vectors)
    assert loaded.search(vectors[:2], k=1).ids == [["v0"], ["v1"]]


def test_leftovers_of_a_killed_save_are_removed_by_the_next_save(tmp_path: Path) -> None:
    store, _ = make_store(10)
    store.save(tmp_path / "index")
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(proc.stdout)
    for leftover in (tmp_sibling(tmp_path / "index", gone), aside_sibling(tmp_path / "index", gone)):
        leftover.mkdir()
        (leftover / "index.faiss").write_bytes(b"half an index")
    store.save(tmp_path / "index")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
