"""A Python client for `videosearch serve`, with the same `search` signature as `SearchEngine`."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import numpy as np

from videosearch.engine.engine import Hit
from videosearch.errors import VideosearchError


class SearchServerError(VideosearchError):
    """The server was unreachable, timed out, or answered with an error; `status` is None when it never answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class SearchClient:
    """`SearchClient("http://127.0.0.1:8000").search("the red circle moves left", k=5)`."""

    def __init__(self, base_url: str, timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        try:
            self._http = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)
        except httpx.InvalidURL as exc:
            raise SearchServerError(f"bad URL {base_url!r} ({exc}); give one like http://127.0.0.1:8000") from None
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, **kwargs: object) -> dict:
        where = f"{str(self._http.base_url).rstrip('/')}{path}"
        try:
            response = self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.TimeoutException:
            raise SearchServerError(f"{where}: no answer within {self.timeout_s:g} s; is it overloaded?") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise SearchServerError(f"cannot reach {where}: {exc}; is `videosearch serve` running?") from None
        try:
            body = response.json()
        except ValueError:
            raise SearchServerError(f"{response.status_code} from {where}, and the answer is not JSON: "
                                    f"{response.text[:200]!r}", response.status_code) from None
        if response.status_code >= 400:
            reason = body.get("error", body) if isinstance(body, dict) else body
            raise SearchServerError(f"{response.status_code}: {reason}", response.status_code)
        if not isinstance(body, dict):
            raise SearchServerError(f"{where} answered {str(body)[:200]!r}, not a JSON object", response.status_code)
        return body

    def search(self, query: str | np.ndarray, k: int = 10, exclude: list[str] | set[str] | None = None) -> list[Hit]:
        """Top-k hits for a text or a query vector (D,); the server scores the vector's direction (unit length)."""
        payload: dict = {"k": k, "exclude": sorted(exclude or [])}
        if isinstance(query, str):
            payload["query"] = query
        else:
            payload["vector"] = np.asarray(query, np.float32).ravel().tolist()
        # json.dumps escapes what is not UTF-8 and writes NaN as is, so the server, not the client, judges the input.
        body = self._call("POST", "/search", content=json.dumps(payload), headers={"content-type": "application/json"})
        try:
            return [Hit(h["video_id"], h["score"], h["start_s"], h["end_s"], h["segment_score"]) for h in body["hits"]]
        except (KeyError, TypeError) as exc:
            raise SearchServerError(f"the server's answer to /search lacks {exc}: {str(body)[:200]!r}") from None

    def video(self, video_id: str) -> dict:
        return self._call("GET", f"/videos/{quote(video_id.encode('utf-8', 'surrogatepass'), safe='')}")

    def health(self) -> dict:
        return self._call("GET", "/healthz")

    def close(self) -> None:
        self._http.close()
