"""Bounded load test of `videosearch serve` on loopback: concurrent searches, latency, peak server memory.

Run:
    .venv/bin/python bench/load.py [--index runs/index] [--requests 1000] [--connections 64]

Serves the index (default: the `small` synthetic world's test videos under an untrained mini embedder, built in a
temporary folder) with `videosearch serve` in a subprocess on 127.0.0.1 at a free port, then fires `--requests`
searches at once from asyncio + httpx (a pool of `--connections`): text queries with varied k and excludes, and
one in four by vector. Latency is per request from its start, so it includes the wait for a pooled connection.
While they run, the server's RSS is sampled (psutil, every 5 ms). Then one oversized body (16 MB) is sent while
/healthz is polled: it must get a 413 without growing the server or stalling /healthz.
Progress goes to stderr; one JSON line of results goes to stdout. Absolute times depend on the machine and load.
The exit status is 1, with the reasons on stderr, when a search went wrong or the oversized body got no 413.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

PHRASES = ["the red circle moves left", "a small green square enters from the left", "a blue triangle spins",
           "two shapes collide in the middle", "the yellow square leaves at the top", "something grows slowly"]


def log(message: str) -> None:
    print(f"[load] {message}", file=sys.stderr, flush=True)


def build_index(folder: Path) -> Path:
    """The `small` world's test videos under an untrained mini embedder, saved as an index in `folder`."""
    import torch

    from videosearch.corpus.world import WorldConfig, generate_world
    from videosearch.embed import MiniEmbedder
    from videosearch.engine import SearchEngine

    world = generate_world(folder / "world", seed=3, config=WorldConfig.preset("small"), workers=1)
    torch.manual_seed(0)
    engine, _ = SearchEngine.build(world / "videos" / "test", MiniEmbedder())
    engine.save(folder / "index")
    return folder / "index"


class RssSampler:
    """Samples a process's resident memory every `interval_s` in a thread; `peak` is the largest seen."""

    def __init__(self, pid: int, interval_s: float = 0.005) -> None:
        self.process, self.interval_s = psutil.Process(pid), interval_s
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def requests_for(n: int, dim: int, ids: list[str], seed: int) -> list[dict]:
    """`n` search payloads: text (three in four) or vector queries, k of 1, 5 or 10, up to 3 excluded ids."""
    rng = random.Random(seed)
    payloads = []
    for i in range(n):
        payload: dict = {"k": rng.choice([1, 5, 10]), "exclude": rng.sample(ids, rng.randint(0, min(3, len(ids))))}
        if i % 4 == 3:
            payload["vector"] = np.random.default_rng(i).standard_normal(dim).tolist()
        else:
            payload["query"] = f"{rng.choice(PHRASES)} {i}"
        payloads.append(payload)
    return payloads


async def fire(url: str, payloads: list[dict], n_videos: int, connections: int) -> tuple[list[float], dict[str, int]]:
    """Sends every payload to POST /search at once; returns latencies (s) of right answers and counts of outcomes."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        async def one(payload: dict) -> tuple[float, str]:
            began = time.perf_counter()
            try:
                response = await client.post("/search", json=payload)
            except httpx.HTTPError as exc:
                return time.perf_counter() - began, type(exc).__name__
            expected = min(payload["k"], n_videos - len(payload["exclude"]))
            ok = response.status_code == 200 and len(response.json()["hits"]) == expected
            return time.perf_counter() - began, "ok" if ok else str(response.status_code)

        results = await asyncio.gather(*(one(p) for p in payloads))
    outcomes: dict[str, int] = {}
    for _, outcome in results:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return [t for t, outcome in results if outcome == "ok"], outcomes


def oversized_body(url: str, size_bytes: int) -> dict:
    """POSTs a body of `size_bytes` while polling /healthz; returns the status and the slowest /healthz (ms)."""
    body = json.dumps({"query": "a", "exclude": ["v%07d" % i for i in range(size_bytes // 11)]}).encode()
    result: dict = {}

    def send() -> None:
        try:
            result["status"] = httpx.post(f"{url}/search", content=body, timeout=60,
                                          headers={"content-type": "application/json"}).status_code
        except httpx.HTTPError as exc:  # the server may close the connection once it has answered 413
            result["status"] = type(exc).__name__

    sender = threading.Thread(target=send)
    slowest = 0.0
    with httpx.Client(base_url=url) as client:
        sender.start()
        while sender.is_alive():
            began = time.perf_counter()
            client.get("/healthz").raise_for_status()
            slowest = max(slowest, time.perf_counter() - began)
    sender.join()
    return {"body_mb": round(len(body) / 1e6, 1), "status": result["status"],
            "healthz_max_ms": round(slowest * 1e3, 1)}


def start_server(index: Path, log_file: Path) -> tuple[subprocess.Popen, str]:
    """`videosearch serve index` on a free loopback port, its stderr to `log_file`; returns it and its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = Path(sys.executable).with_name("videosearch")
    with log_file.open("w") as stderr:
        server = subprocess.Popen([str(cli), "serve", str(index), "--port", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"`videosearch serve {index}` exited with {server.returncode}:\n{log_file.read_text()}")
        try:
            httpx.get(f"{url}/healthz").raise_for_status()
            return server, url
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not answer /healthz within 120 s")


def failures(result: dict) -> list[str]:
    """What the results break of the contract: every search right, the oversized body a 413."""
    found = []
    if result["errors"]:
        found.append(f"{result['errors']} of {result['requests']} searches went wrong: {result['outcomes']}")
    if result["oversized"]["status"] != 413:
        found.append(f"the oversized body got {result['oversized']['status']}, not 413")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="index folder (default: a small one built in a temp folder)")
    parser.add_argument("--requests", type=int, default=1000, help="searches sent at once")
    parser.add_argument("--connections", type=int, default=64, help="HTTP connections in the client's pool")
    parser.add_argument("--oversized-mb", type=float, default=16.0, help="size of the body that must get 413")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index or build_index(Path(tmp))
        server_log = Path(tmp) / "serve.log"
        server, url = start_server(index, server_log)
        try:
            health = httpx.get(f"{url}/healthz").json()
            n = health["videos"]
            everything = httpx.post(f"{url}/search", json={"query": "anything", "k": n}).json()["hits"]
            ids = [hit["video_id"] for hit in everything][: max(1, n // 4)]
            asyncio.run(fire(url, requests_for(32, health["dim"], ids, seed=1), n, args.connections))  # warm up
            rss_before = psutil.Process(server.pid).memory_info().rss
            log(f"{args.requests} searches over {args.connections} connections against {url}")
            with RssSampler(server.pid) as rss:
                began = time.perf_counter()
                payloads = requests_for(args.requests, health["dim"], ids, seed=0)
                latencies, outcomes = asyncio.run(fire(url, payloads, n, args.connections))
                wall_s = time.perf_counter() - began
            rss_after_load = psutil.Process(server.pid).memory_info().rss
            log("oversized body")
            with RssSampler(server.pid) as body_rss:
                big = oversized_body(url, int(args.oversized_mb * 1e6))
        finally:
            server.kill()
            server.wait()
        if outcomes.get("ok", 0) != args.requests:
            log(f"the server's log:\n{server_log.read_text()}")
    ms = np.array(latencies) * 1e3
    result = {
        "requests": args.requests, "connections": args.connections, "videos": health["videos"],
        "errors": args.requests - outcomes.get("ok", 0), "outcomes": outcomes,
        "wall_s": round(wall_s, 2), "searches_per_s": round(args.requests / wall_s, 1),
        "latency_ms": {q: round(float(np.percentile(ms, p)), 1) for q, p in (("p50", 50), ("p99", 99))} if len(ms)
        else None,
        "server_rss_mb": {"before": round(rss_before / 1e6, 1), "peak": round(rss.peak / 1e6, 1),
                          "after": round(rss_after_load / 1e6, 1)},
        "oversized": {**big, "rss_growth_mb": round((body_rss.peak - rss_after_load) / 1e6, 1)},
    }
    print(json.dumps(result), flush=True)
    for failure in failures(result):
        log(f"FAILED: {failure}")
    return 1 if failures(result) else 0


if __name__ == "__main__":
    sys.exit(main())
