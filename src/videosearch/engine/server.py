"""HTTP API over a `SearchEngine`: POST /search, GET /videos/{id}, GET /healthz.

Run: `videosearch serve runs/index` (binds 127.0.0.1:8000). Every answer that is not a 200 is JSON
`{"error": "..."}` saying what is wrong: 4xx for bad input (413 for a body over `MAX_BODY_BYTES`, 408 for a body
that does not arrive within `BODY_TIMEOUT_S`), 500 with no traceback for a fault of ours; the server keeps serving.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint's annotation at definition time, and the
# request model is made per engine (its vector length is the engine's dimension).
from typing import Annotated, Self

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, model_validator
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videosearch.engine.engine import MAX_K, SearchEngine
from videosearch.errors import VideosearchError
from videosearch.index.base import MAX_ID_BYTES

MAX_QUERY_CHARS = 2000
MAX_EXCLUDE = 1000
MAX_BODY_BYTES = 1 << 20  # 1000 ids of 512 UTF-8 bytes and a 4096-d vector fit (ids sent as \u escapes may not)
BODY_TIMEOUT_S = 10.0


def _video_id(video_id: str) -> str:
    if len(video_id.encode("utf-8")) > MAX_ID_BYTES:
        raise ValueError(f"a video id is at most {MAX_ID_BYTES} UTF-8 bytes")
    return video_id


# A length constraint makes pydantic refuse strings that are not valid Unicode (lone surrogates) with a 422.
Text = Annotated[str, Field(max_length=MAX_QUERY_CHARS)]
VideoId = Annotated[str, Field(min_length=1, max_length=MAX_ID_BYTES), AfterValidator(_video_id)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class SearchRequest(BaseModel):
    """Exactly one of `query` (text) or `vector` (a direction: the server scales it to unit length)."""

    # JSON types as the schema states them (no `true` for a number, no "3" for k); a misspelt field is an error
    model_config = ConfigDict(strict=True, extra="forbid",
                              json_schema_extra={"oneOf": [{"required": ["query"]}, {"required": ["vector"]}]})

    query: Text | None = None
    vector: list[Finite] | None = None
    k: int = Field(10, ge=1, le=MAX_K)
    exclude: list[VideoId] = Field(default_factory=list, max_length=MAX_EXCLUDE)

    @model_validator(mode="before")
    @classmethod
    def _one_key(cls, data: object) -> object:
        """Both keys given is two queries, even when one is null: the schema's `oneOf` counts keys."""
        if isinstance(data, dict) and "query" in data and "vector" in data:
            raise ValueError("give exactly one of 'query' (text) or 'vector'")
        return data

    @model_validator(mode="after")
    def _one_query(self) -> Self:
        if (self.query is None) == (self.vector is None):
            raise ValueError("give exactly one of 'query' (text) or 'vector'")
        if self.query is not None and not self.query.strip():
            raise ValueError("'query' is empty")
        if self.vector is not None and not any(self.vector):
            raise ValueError("'vector' is all zeros; give a direction")
        return self


def search_request_model(dim: int) -> type[SearchRequest]:
    """`SearchRequest` whose `vector` must have exactly `dim` numbers (so the OpenAPI schema says so too)."""
    vector = (list[Finite] | None, Field(None, min_length=dim, max_length=dim))
    return create_model("SearchRequest", __base__=SearchRequest, vector=vector)  # type: ignore[call-overload]


def unit_vector(vector: list[float]) -> np.ndarray:
    """float32 (D,) of length 1 in the direction of `vector`, finite even for values near the float64 limits."""
    v = np.asarray(vector, np.float64)
    v = v / np.abs(v).max()  # scale first: the norm of huge values would overflow
    return (v / np.linalg.norm(v)).astype(np.float32)


class HitModel(BaseModel):
    video_id: str
    score: Finite
    start_s: Finite
    end_s: Finite
    segment_score: Finite


class SearchResponse(BaseModel):
    hits: list[HitModel]


class HealthResponse(BaseModel):
    status: str
    videos: int
    model_id: str
    dim: int


class VideoResponse(BaseModel):
    video_id: str
    duration_s: float
    path: str
    segments: list[list[float]]


class ErrorResponse(BaseModel):
    error: str


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


class BodyLimit:
    """Pure ASGI middleware: reads the whole body first, at most `max_bytes` within `timeout_s`, then replays it."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, timeout_s: float = BODY_TIMEOUT_S) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = _error(413, f"the request body is over {self.max_bytes} bytes; send a smaller request")
        length = Headers(scope=scope).get("content-length")
        if length is not None and not (length.isascii() and length.isdigit()):
            await _error(400, f"Content-Length {length[:40]!r} is not a number")(scope, receive, send)
            return
        if length is not None and int(length) > self.max_bytes:
            await too_big(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        try:
            with anyio.fail_after(self.timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunks.append(message.get("body", b""))
                    size += len(chunks[-1])
                    if size > self.max_bytes:
                        await too_big(scope, receive, send)
                        return
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _error(408, f"the request body did not arrive within {self.timeout_s:g} s")(scope, receive, send)
            return
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        pending = [body]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)


def create_app(engine: SearchEngine, max_body_bytes: int = MAX_BODY_BYTES,
               body_timeout_s: float = BODY_TIMEOUT_S) -> FastAPI:
    """A FastAPI app answering from `engine`; nothing else imports this module."""
    app = FastAPI(title="videosearch", version="0.1.0", responses={"default": {"model": ErrorResponse}})
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, timeout_s=body_timeout_s)
    SearchBody = search_request_model(engine.embedder.dim)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
                             for e in exc.errors())
        return _error(422, problems)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(VideosearchError)
    async def _user_error(_: Request, exc: VideosearchError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(Exception)
    async def _fault(_: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after answering, so the traceback reaches the server log, never the client.
        return _error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    @app.get("/healthz", response_model=HealthResponse)
    def healthz() -> HealthResponse:
        embedder = engine.embedder
        return HealthResponse(status="ok", videos=len(engine), model_id=embedder.model_id, dim=embedder.dim)

    @app.get("/videos/{video_id:path}", response_model=VideoResponse)
    def video(video_id: str) -> JSONResponse:
        if video_id not in engine.segments:
            return _error(404, f"unknown video id {video_id!r}")
        return JSONResponse(engine.video_info(video_id))

    @app.post("/search", response_model=SearchResponse)
    def search(request: SearchBody) -> SearchResponse:  # type: ignore[valid-type]
        query = request.query if request.query is not None else unit_vector(request.vector)
        hits = engine.search(query, k=request.k, exclude=request.exclude)
        return SearchResponse(hits=[HitModel(**hit.__dict__) for hit in hits])

    return app
