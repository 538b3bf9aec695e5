"""A smaller `bench/load.py`: concurrent searches against a live loopback server all succeed (no latency asserted)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import numpy as np

from videosearch.engine import SearchEngine
from videosearch.engine.server import create_app


async def _search_all_at_once(url: str, payloads: list[dict], connections: int) -> list[int | str]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def one(payload: dict) -> int | str:
            try:
                response = await client.post("/search", json=payload)
            except httpx.HTTPError as exc:
                return type(exc).__name__
            return response.status_code if len(response.json().get("hits", [])) == payload["k"] else "short"

        return await asyncio.gather(*(one(p) for p in payloads))


def test_200_concurrent_searches_all_succeed(engine: SearchEngine, loopback: Callable) -> None:
    rng = np.random.default_rng(0)
    ids = engine.video_ids
    payloads: list[dict] = []
    for i in range(200):
        payload: dict = {"k": int(rng.integers(1, 6)), "exclude": ids[: i % 3]}
        if i % 4:
            payload["query"] = f"the red circle moves left {i}"
        else:
            payload["vector"] = rng.standard_normal(engine.embedder.dim).tolist()
        payloads.append(payload)
    with loopback(create_app(engine)) as url:
        outcomes = asyncio.run(_search_all_at_once(url, payloads, connections=32))
        assert httpx.get(f"{url}/healthz").status_code == 200
    assert outcomes == [200] * len(payloads)
