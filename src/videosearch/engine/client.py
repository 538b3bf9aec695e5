"""A Python client for `videosearch serve`, with the same `search` signature as `SearchEngine`."""

from __future__ import annotations

import httpx
import numpy as np

from videosearch.engine.engine import Hit
from videosearch.errors import VideosearchError


class SearchServerError(VideosearchError):
    """The server answered with an error; the message is the server's."""


class SearchClient:
    """`SearchClient("http://127.0.0.1:8000").search("the red circle moves left", k=5)`."""

    def __init__(self, base_url: str, timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)

    def _call(self, method: str, path: str, **kwargs: object) -> dict:
        try:
            response = self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise SearchServerError(f"cannot reach {self._http.base_url}: {exc}") from None
        body = response.json()
        if response.status_code >= 400:
            raise SearchServerError(f"{response.status_code}: {body.get('error', body)}")
        return body

    def search(self, query: str | np.ndarray, k: int = 10, exclude: list[str] | set[str] | None = None) -> list[Hit]:
        """Top-k hits for a text or a query vector (D,)."""
        payload: dict = {"k": k, "exclude": sorted(exclude or [])}
        if isinstance(query, str):
            payload["query"] = query
        else:
            payload["vector"] = np.asarray(query, np.float32).ravel().tolist()
        return [Hit(**hit) for hit in self._call("POST", "/search", json=payload)["hits"]]

    def video(self, video_id: str) -> dict:
        return self._call("GET", f"/videos/{video_id}")

    def health(self) -> dict:
        return self._call("GET", "/healthz")

    def close(self) -> None:
        self._http.close()
