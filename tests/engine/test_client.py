from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from videosearch.embed import MiniEmbedder
from videosearch.engine import SearchEngine
from videosearch.engine.client import SearchClient, SearchServerError
from videosearch.engine.server import create_app


def _answering(handler: Callable[[httpx.Request], httpx.Response]) -> SearchClient:
    return SearchClient("http://127.0.0.1:1", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("response", "status", "fragment"),
    [
        (httpx.Response(502, text="<html>Bad Gateway</html>"), 502, "not JSON: '<html>Bad Gateway</html>'"),
        (httpx.Response(200, text="<!DOCTYPE html>"), 200, "not JSON"),
        (httpx.Response(500, text=""), 500, "not JSON"),
        (httpx.Response(200, json=[1, 2]), 200, "not a JSON object"),
        (httpx.Response(503, json=["busy"]), 503, "503: ['busy']"),
        (httpx.Response(422, json={"error": "k: too big"}), 422, "422: k: too big"),
    ],
)
def test_any_answer_that_is_not_a_json_object_raises_our_error(response: httpx.Response, status: int,
                                                               fragment: str) -> None:
    client = _answering(lambda _: response)
    with pytest.raises(SearchServerError) as raised:  # was json.JSONDecodeError for non-JSON bodies
        client.health()
    assert raised.value.status == status and fragment in str(raised.value)


def test_a_search_answer_without_hits_raises_our_error() -> None:
    client = _answering(lambda _: httpx.Response(200, json={"hits": [{"video_id": "a"}]}))
    with pytest.raises(SearchServerError, match="lacks 'score'"):
        client.search("a circle")


def test_video_ids_are_url_encoded() -> None:
    paths: list[bytes] = []

    def record(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path)
        return httpx.Response(200, json={})

    client = _answering(record)
    for video_id in ["a/b", "x?y=1", "50% off#2", "../healthz", "é t\ud800"]:
        client.video(video_id)
    assert paths == [b"/videos/a%2Fb", b"/videos/x%3Fy%3D1", b"/videos/50%25%20off%232", b"/videos/..%2Fhealthz",
                     b"/videos/%C3%A9%20t%ED%A0%80"]


@pytest.fixture(scope="module")
def server(small_world: Path, _mini_embedder: MiniEmbedder, loopback: Callable) -> Iterator[tuple[str, SearchEngine]]:
    """A live loopback server and its engine, shared by this module's tests."""
    engine, _ = SearchEngine.build(small_world / "videos" / "test", _mini_embedder)
    with loopback(create_app(engine)) as url:
        yield url, engine


def test_ids_arrive_at_the_server_intact(server: tuple[str, SearchEngine]) -> None:
    url, engine = server
    client = SearchClient(url)
    for video_id in ["a/b", "x?y=1#z", "../healthz", "100%"]:  # were cut at '?' or '#', or routed elsewhere
        with pytest.raises(SearchServerError) as raised:
            client.video(video_id)
        assert str(raised.value) == f"404: unknown video id {video_id!r}"
    real = engine.video_ids[0]
    assert client.video(real)["video_id"] == real


def test_bad_input_is_judged_by_the_server(server: tuple[str, SearchEngine]) -> None:
    url, engine = server
    client = SearchClient(url)
    with pytest.raises(SearchServerError, match="422: exclude.0") as raised:  # json= raised UnicodeEncodeError
        client.search("a circle", exclude=["\ud800"])
    assert raised.value.status == 422
    with pytest.raises(SearchServerError, match="422: vector.0: Input should be a finite number"):
        client.search([float("nan")] + [0.1] * (engine.embedder.dim - 1))  # type: ignore[arg-type]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_timeouts_and_unreachable_servers_raise_our_error(silent_port: int) -> None:
    slow = SearchClient(f"http://127.0.0.1:{silent_port}", timeout_s=0.2)
    with pytest.raises(SearchServerError, match="no answer within 0.2 s") as raised:
        slow.search("a circle")
    assert raised.value.status is None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(SearchServerError, match="cannot reach"):
            SearchClient(f"http://127.0.0.1:{closed}").health()
    with pytest.raises(SearchServerError, match="cannot reach .*missing an 'http://'"):
        SearchClient("127.0.0.1:8000").health()
    with pytest.raises(SearchServerError, match="bad URL"):
        SearchClient("http://\x00")
