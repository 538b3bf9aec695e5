from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

from videosearch.engine import SearchEngine
from videosearch.engine.client import SearchClient, SearchServerError
from videosearch.engine.server import MAX_QUERY_CHARS, create_app


@pytest.fixture
def http(engine: SearchEngine) -> TestClient:
    return TestClient(create_app(engine))


def test_search_health_and_video_endpoints(http: TestClient, engine: SearchEngine) -> None:
    health = http.get("/healthz").json()
    assert health["status"] == "ok" and health["videos"] == len(engine)
    hits = http.post("/search", json={"query": "the red circle moves left", "k": 3}).json()["hits"]
    assert len(hits) == 3 and {"video_id", "score", "start_s", "end_s"} <= set(hits[0])
    info = http.get(f"/videos/{hits[0]['video_id']}").json()
    assert info["duration_s"] > 0
    vector = engine.encode_queries(["the red circle moves left"])[0].tolist()
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
        ({"query": "a", "vector": [0.0]}, 422, "exactly one"),
        ({"vector": [0.1, 0.2]}, 400, "384 numbers"),
        ({"query": 5}, 422, "query"),
    ],
)
def test_bad_requests_get_a_json_error_and_the_server_keeps_serving(http: TestClient, payload: dict, status: int,
                                                                     fragment: str) -> None:
    response = http.post("/search", json=payload)
    assert response.status_code == status
    assert fragment in response.json()["error"]
    assert http.get("/healthz").status_code == 200


def test_malformed_json_and_unknown_video(http: TestClient) -> None:
    response = http.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "error" in response.json()
    missing = http.get("/videos/no-such-video")
    assert missing.status_code == 404 and "no-such-video" in missing.json()["error"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_python_client_against_a_live_loopback_server(engine: SearchEngine) -> None:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        client = SearchClient(f"http://127.0.0.1:{port}")
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        query = "the small green square enters from the left"
        local = engine.search(query, k=4)
        remote = client.search(query, k=4)
        assert [h.video_id for h in remote] == [h.video_id for h in local]
        np.testing.assert_allclose([h.score for h in remote], [h.score for h in local], rtol=1e-5)
        with pytest.raises(SearchServerError, match="404"):
            client.video("nope")
        client.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
