from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from videosearch.embed import MiniEmbedder
from videosearch.engine import SearchEngine
from videosearch.engine.client import SearchClient, SearchServerError
from videosearch.engine.server import MAX_BODY_BYTES, MAX_EXCLUDE, MAX_QUERY_CHARS, BodyLimit, create_app
from videosearch.index.base import MAX_ID_BYTES


@pytest.fixture(scope="module")
def served(small_world: Path, _mini_embedder: MiniEmbedder) -> SearchEngine:
    """One engine for this module's tests that only read it (the `engine` fixture builds one per test, ~1 s)."""
    engine, result = SearchEngine.build(small_world / "videos" / "test", _mini_embedder)
    assert not result.skipped
    return engine


@pytest.fixture(scope="module")
def http(served: SearchEngine) -> TestClient:
    return TestClient(create_app(served))


def test_search_health_and_video_endpoints(http: TestClient, served: SearchEngine) -> None:
    health = http.get("/healthz").json()
    assert health["status"] == "ok" and health["videos"] == len(served)
    hits = http.post("/search", json={"query": "the red circle moves left", "k": 3}).json()["hits"]
    assert len(hits) == 3 and {"video_id", "score", "start_s", "end_s"} <= set(hits[0])
    info = http.get(f"/videos/{hits[0]['video_id']}").json()
    assert info["duration_s"] > 0
    vector = served.encode_queries(["the red circle moves left"])[0].tolist()
    by_vector = http.post("/search", json={"vector": vector, "k": 3, "exclude": [hits[0]["video_id"]]}).json()
    assert hits[0]["video_id"] not in {h["video_id"] for h in by_vector["hits"]}


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        ({"query": "   "}, 422, "empty"),
        ({"query": "x" * (MAX_QUERY_CHARS + 1)}, 422, "query"),
        ({"query": "a circle", "k": 0}, 422, "k"),
        ({"query": "a circle", "k": 100000}, 422, "k"),
        ({}, 422, "exactly one"),
        ({"query": "a", "vector": [0.1] * 384}, 422, "exactly one"),
        ({"query": "a", "vector": None}, 422, "exactly one"),
        ({"query": None, "vector": [0.1] * 384}, 422, "exactly one"),
        ({"vector": [0.1, 0.2]}, 422, "384"),
        ({"vector": [0.1] * 385}, 422, "384"),
        ({"vector": [0.0] * 384}, 422, "all zeros"),
        ({"query": 5}, 422, "query"),
        ({"query": "a", "exclude": ["v"] * (MAX_EXCLUDE + 1)}, 422, "exclude"),
        ({"query": "a", "exclude": ["é" * (MAX_ID_BYTES // 2 + 1)]}, 422, f"{MAX_ID_BYTES} UTF-8 bytes"),
        ({"query": "a", "exclude": [""]}, 422, "exclude.0"),
        ({"query": "a", "exclude": ["tab\there"]}, 400, "control characters"),
        ({"query": "a", "exlude": ["v"]}, 422, "exlude"),  # a misspelt field: was ignored with a 200
        ({"vector": [True] * 384}, 422, "vector.0"),  # booleans were taken for numbers
        ({"query": "a", "k": "3"}, 422, "k"),
    ],
)
def test_bad_requests_get_a_json_error_and_the_server_keeps_serving(http: TestClient, payload: dict, status: int,
                                                                     fragment: str) -> None:
    response = http.post("/search", json=payload)
    assert response.status_code == status
    assert fragment in response.json()["error"]
    assert http.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"query":"a","exclude":["\\ud800"]}', "exclude.0"),  # a lone surrogate: was a plain-text 500
        (b'{"query":"a \\udfff"}', "query"),
        (b'{"vector":[NaN' + b",0.1" * 383 + b"]}", "finite"),
        (b'{"vector":[1e400' + b",0.1" * 383 + b"]}", "finite"),
        (b"{not json", "JSON"),
        (b'{"query":"a"' + b"}" * 5, "JSON"),
    ],
)
def test_bodies_json_cannot_hold_get_a_json_4xx(http: TestClient, raw: bytes, fragment: str) -> None:
    response = http.post("/search", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.headers["content-type"] == "application/json"
    assert fragment in response.json()["error"]


@pytest.mark.parametrize("scale", [3e38, 1e300, 1e-300])
def test_huge_and_tiny_vectors_rank_like_their_direction_with_finite_scores(http: TestClient, served: SearchEngine,
                                                                             scale: float) -> None:
    direction = served.encode_queries(["the red circle moves left"])[0].astype(np.float64)
    signs = np.where(direction >= 0, 1.0, -1.0)  # every number at +-scale: was 200 with scores of +-3e38 or null
    response = http.post("/search", json={"vector": (signs * scale).tolist(), "k": 5})
    assert response.status_code == 200
    hits = response.json()["hits"]
    local = served.search(signs / np.linalg.norm(signs), k=5)
    assert [h["video_id"] for h in hits] == [h.video_id for h in local]
    scores = np.array([[h["score"], h["segment_score"]] for h in hits], dtype=float)
    assert np.isfinite(scores).all() and np.abs(scores).max() <= 1.0 + 1e-5


def test_not_found_method_not_allowed_and_faults_answer_json(engine: SearchEngine,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    http = TestClient(create_app(engine), raise_server_exceptions=False)
    assert http.get("/nope").status_code == 404 and http.get("/nope").json()["error"] == "Not Found"
    wrong = http.get("/search")
    assert wrong.status_code == 405 and wrong.json()["error"] and wrong.headers["allow"] == "POST"
    missing = http.get("/videos/no-such-video")
    assert missing.status_code == 404 and "no-such-video" in missing.json()["error"]
    assert "'a/b'" in http.get("/videos/a%2Fb").json()["error"]

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("secret detail of a bug")

    monkeypatch.setattr(engine, "search", broken)
    fault = http.post("/search", json={"query": "a"})
    assert fault.status_code == 500 and fault.json() == {
        "error": "internal error (RuntimeError); the server log has the details"}
    assert http.get("/healthz").status_code == 200


def test_bodies_over_the_cap_get_413_whether_declared_or_streamed(http: TestClient) -> None:
    declared = http.post("/search", content=b" " * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "smaller" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the middleware counts what arrives
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    streamed = http.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "smaller" in streamed.json()["error"]
    fits = json.dumps({"query": "a", "exclude": ["v" * MAX_ID_BYTES] * MAX_EXCLUDE, "k": 1})
    response = http.post("/search", content=fits, headers={"content-type": "application/json"})
    assert len(fits) < MAX_BODY_BYTES and response.status_code == 200


async def _call_asgi(app: BodyLimit, headers: list[tuple[bytes, bytes]], body: bytes) -> list[dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/search", "headers": headers}
    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent


def test_a_content_length_that_is_not_a_number_gets_400_json() -> None:
    import asyncio

    async def never_called(*_: object) -> None:
        raise AssertionError("the app must not see a request with a bad Content-Length")

    sent = asyncio.run(_call_asgi(BodyLimit(never_called), [(b"content-length", "¹²".encode("latin-1"))], b"{}"))
    assert sent[0]["status"] == 400 and "not a number" in json.loads(sent[1]["body"])["error"]


@pytest.fixture(scope="module")
def live_server(served: SearchEngine, loopback: Callable) -> Iterator[str]:
    """The app on a loopback port (uvicorn in a thread), with a body read timeout of 0.5 s."""
    with loopback(create_app(served, body_timeout_s=0.5)) as url:
        yield url


def test_a_client_that_stops_sending_its_body_gets_408(live_server: str) -> None:
    host, port = live_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"query\":")
        started = time.monotonic()
        answer = b""
        while b"}" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in answer
    assert time.monotonic() - started < 5


def test_python_client_against_a_live_loopback_server(live_server: str, served: SearchEngine) -> None:
    client = SearchClient(live_server)
    query = "the small green square enters from the left"
    local = served.search(query, k=4)
    remote = client.search(query, k=4)
    assert [h.video_id for h in remote] == [h.video_id for h in local]
    np.testing.assert_allclose([h.score for h in remote], [h.score for h in local], rtol=1e-5)
    with pytest.raises(SearchServerError, match="404"):
        client.video("nope")
    client.close()
