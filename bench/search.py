"""Benchmark of vector search: our FAISS store against numpy, approximate indexes, and Milvus-lite.

Run:
    .venv/bin/python bench/search.py [--sizes 10000 100000 1000000] [--queries 256] [--quick]

On clustered random L2-normalised 384-d float32 vectors (like real embeddings; queries from the same clusters):
1. exact search: `FaissStore.search` with the default "Flat" factory (the engine's path) against a plain numpy
   matmul + np.argpartition top-k over the same vectors, for a batch of queries and for single queries;
   `ratio` = our queries/s over numpy's, measured interleaved in one process;
2. IVF (nlist ~ sqrt(N), a power of two; nprobe 16) at every size and HNSW32 up to --hnsw-max-size:
   recall@k against exact search and speed-up over it;
3. the Milvus store (milvus-lite, FLAT) against the FAISS store at --milvus-size: agreement of the top-k and
   queries/s of each.
Progress goes to stderr; one JSON line of results goes to stdout. Absolute numbers depend on the machine and its
load; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Callable

import faiss
import numpy as np

from videosearch.index import IndexConfig, VectorStore, create_store

DIM = 384
_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def clustered_unit_vectors(n: int, n_clusters: int, seed: int, spread: float = 0.6) -> np.ndarray:
    """float32 (n, DIM) L2-normalised points around `n_clusters` random centres (centres fixed by seed 0)."""
    centres = np.random.default_rng(0).standard_normal((n_clusters, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 65536):
        stop = min(start + 65536, n)
        block = rng.standard_normal((stop - start, DIM), dtype=np.float32) * np.float32(spread / math.sqrt(DIM))
        block += centres[rng.integers(0, n_clusters, stop - start)]
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def numpy_topk(queries: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """The baseline: one matmul, np.argpartition, then sort the k. Returns row indices (Q, k), best first."""
    scores = queries @ vectors.T  # (Q, N)
    part = np.argpartition(scores, -k, axis=1)[:, -k:]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def median_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Runs each function `repeats` times, interleaved so load changes hit all alike; median seconds each."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def recall(found: list[list[str]], exact: list[list[str]], k: int) -> float:
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(found, exact)]))


def build(config: IndexConfig, ids: list[str], vectors: np.ndarray) -> tuple[VectorStore, float]:
    start = time.perf_counter()
    store = create_store(config, dim=DIM, model_id="bench")
    store.add(ids, vectors)
    len(store)  # milvus-lite flushes its memtable on the first read: count it as build time
    return store, time.perf_counter() - start


def bench_exact(n: int, vectors: np.ndarray, ids: list[str], queries: np.ndarray, k: int, repeats: int) -> tuple:
    """Exact search of the FAISS store vs numpy; returns (result dict, exact ids, store qps)."""
    store, build_s = build(IndexConfig(), ids, vectors)
    store.search(queries[:16], k)  # warm-up
    times = median_seconds(
        {"ours": lambda: store.search(queries, k), "numpy": lambda: numpy_topk(queries, vectors, k)}, repeats
    )
    exact = store.search(queries, k).ids
    reference = [[ids[r] for r in row] for row in numpy_topk(queries, vectors, k)]
    singles = queries[:32]
    single_times = median_seconds({
        "ours": lambda: [store.search(q, k) for q in singles],
        "numpy": lambda: [numpy_topk(q[None, :], vectors, k) for q in singles],
    }, 3)
    q = len(queries)
    result = {
        "n": n, "build_s": round(build_s, 2),
        "ours_qps": round(q / times["ours"], 1), "numpy_qps": round(q / times["numpy"], 1),
        "ratio": round(times["numpy"] / times["ours"], 3),
        "agree_with_numpy_recall": round(recall(exact, reference, k), 5),
        "single_query_ours_qps": round(len(singles) / single_times["ours"], 1),
        "single_query_numpy_qps": round(len(singles) / single_times["numpy"], 1),
    }
    log(f"exact n={n}: ours {result['ours_qps']} q/s, numpy {result['numpy_qps']} q/s, ratio {result['ratio']}")
    return result, exact, q / times["ours"]


def bench_approximate(config: IndexConfig, n: int, vectors: np.ndarray, ids: list[str], queries: np.ndarray,
                      k: int, repeats: int, exact: list[list[str]], exact_qps: float) -> dict:
    log(f"building {config.factory} on {n} vectors")
    store, build_s = build(config, ids, vectors)
    store.search(queries[:16], k)
    seconds = median_seconds({"search": lambda: store.search(queries, k)}, repeats)["search"]
    qps = len(queries) / seconds
    found = store.search(queries, k).ids
    result = {
        "n": n, "factory": config.factory, "build_s": round(build_s, 1), "qps": round(qps, 1),
        f"recall@{k}": round(recall(found, exact, k), 4), "speedup_vs_exact": round(qps / exact_qps, 2),
    }
    result |= {"nprobe": config.nprobe} if config.factory.startswith("IVF") else {"ef_search": config.ef_search}
    log(f"{config.factory} n={n}: recall@{k} {result[f'recall@{k}']}, {result['speedup_vs_exact']}x exact")
    store.close()
    return result


def bench_milvus(n: int, n_queries: int, k: int, repeats: int) -> dict:
    vectors = clustered_unit_vectors(n, max(16, n // 1000), seed=7)
    queries = clustered_unit_vectors(n_queries, max(16, n // 1000), seed=8)
    ids = [f"v{i}" for i in range(n)]
    log(f"building FAISS and Milvus-lite stores of {n} vectors")
    faiss_store, faiss_build_s = build(IndexConfig(), ids, vectors)
    milvus_store, milvus_build_s = build(IndexConfig(backend="milvus"), ids, vectors)
    milvus_store.search(queries[:16], k)
    times = median_seconds({"faiss": lambda: faiss_store.search(queries, k),
                            "milvus": lambda: milvus_store.search(queries, k)}, repeats)
    exact = faiss_store.search(queries, k).ids
    found = milvus_store.search(queries, k).ids
    milvus_store.close()
    result = {
        "n": n, "index": "FLAT", "faiss_build_s": round(faiss_build_s, 2), "milvus_build_s": round(milvus_build_s, 1),
        "faiss_qps": round(len(queries) / times["faiss"], 1), "milvus_qps": round(len(queries) / times["milvus"], 1),
        f"recall@{k}_vs_faiss": round(recall(found, exact, k), 4),
        "same_ranking_rate": round(float(np.mean([a == b for a, b in zip(found, exact)])), 4),
    }
    log(f"milvus n={n}: {result['milvus_qps']} q/s vs faiss {result['faiss_qps']} q/s, "
        f"recall {result[f'recall@{k}_vs_faiss']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="store sizes (default 1e4 1e5 1e6)")
    parser.add_argument("--queries", type=int, default=256, help="queries per batch")
    parser.add_argument("--k", type=int, default=10, help="hits per query")
    parser.add_argument("--nprobe", type=int, default=16, help="IVF lists visited per query")
    parser.add_argument("--hnsw-max-size", type=int, default=100_000, help="largest size to build HNSW32 on")
    parser.add_argument("--milvus-size", type=int, default=100_000, help="vectors in the Milvus comparison")
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repeats (about a minute)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sizes = args.sizes or ([10_000, 50_000] if args.quick else [10_000, 100_000, 1_000_000])
    milvus_size = min(args.milvus_size, 10_000) if args.quick else args.milvus_size
    k = args.k
    results: dict = {
        "bench": "index.search", "dim": DIM, "queries": args.queries, "k": k,
        "data": "clustered: max(16, N/1000) random unit centres + gaussian noise (norm ~0.6), L2-normalised",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "faiss": faiss.__version__,
                    "numpy": np.__version__, "faiss_omp_threads": faiss.omp_get_max_threads()},
        "exact": [], "ivf": [], "hnsw": [],
    }
    for n in sizes:
        repeats = 2 if args.quick or n >= 1_000_000 else 4
        log(f"n={n}: generating vectors")
        vectors = clustered_unit_vectors(n, max(16, n // 1000), seed=1)
        queries = clustered_unit_vectors(args.queries, max(16, n // 1000), seed=2)
        ids = [f"v{i}" for i in range(n)]
        exact_result, exact, exact_qps = bench_exact(n, vectors, ids, queries, k, repeats)
        results["exact"].append(exact_result)
        nlist = 2 ** round(math.log2(math.sqrt(n)))
        results["ivf"].append(bench_approximate(IndexConfig(factory=f"IVF{nlist},Flat", nprobe=args.nprobe), n,
                                                vectors, ids, queries, k, repeats, exact, exact_qps))
        if n <= args.hnsw_max_size:
            results["hnsw"].append(bench_approximate(IndexConfig(factory="HNSW32"), n, vectors, ids, queries, k,
                                                     repeats, exact, exact_qps))
        del vectors
    results["milvus"] = bench_milvus(milvus_size, args.queries, k, 2 if args.quick else 3)
    results["runtime_s"] = round(time.perf_counter() - _T0, 1)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
