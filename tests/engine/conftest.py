"""Fixtures of the engine's HTTP tests: an app served on a free loopback port by uvicorn in a thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn


@contextlib.contextmanager
def serve_on_loopback(app: Any) -> Iterator[str]:
    """Serves `app` on 127.0.0.1 at a free port until the block ends; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def loopback() -> Callable[[Any], contextlib.AbstractContextManager[str]]:
    """`with loopback(app) as url:` serves an ASGI app on a free loopback port."""
    return serve_on_loopback
