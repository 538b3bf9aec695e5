"""HTTP API over a `SearchEngine`: POST /search, GET /videos/{id}, GET /healthz.

Run: `videosearch serve runs/index` (binds 127.0.0.1:8000). Every bad request gets a 4xx JSON answer
`{"error": "..."}` that says what is wrong, and the server keeps serving.
"""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from videosearch.engine.engine import MAX_K, SearchEngine
from videosearch.errors import VideosearchError

MAX_QUERY_CHARS = 2000


class SearchRequest(BaseModel):
    """Exactly one of `query` (text) or `vector` (the engine's dimension)."""

    query: str | None = Field(None, max_length=MAX_QUERY_CHARS)
    vector: list[float] | None = None
    k: int = Field(10, ge=1, le=MAX_K)
    exclude: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        if (self.query is None) == (self.vector is None):
            raise ValueError("give exactly one of 'query' (text) or 'vector'")
        if self.query is not None and not self.query.strip():
            raise ValueError("'query' is empty")
        if self.vector is not None and not all(math.isfinite(x) for x in self.vector):
            raise ValueError("'vector' holds a non-finite number")
        return self


class HitModel(BaseModel):
    video_id: str
    score: float
    start_s: float
    end_s: float
    segment_score: float


class SearchResponse(BaseModel):
    hits: list[HitModel]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


def create_app(engine: SearchEngine) -> FastAPI:
    """A FastAPI app answering from `engine`; nothing else imports this module."""
    app = FastAPI(title="videosearch", version="0.1.0")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
                             for e in exc.errors())
        return _error(422, problems)

    @app.exception_handler(VideosearchError)
    async def _user_error(_: Request, exc: VideosearchError) -> JSONResponse:
        return _error(400, str(exc))

    @app.get("/healthz")
    def healthz() -> dict:
        embedder = engine.embedder
        return {"status": "ok", "videos": len(engine), "model_id": embedder.model_id, "dim": embedder.dim}

    @app.get("/videos/{video_id}")
    def video(video_id: str) -> JSONResponse:
        if video_id not in engine.segments:
            return _error(404, f"unknown video id {video_id!r}")
        return JSONResponse(engine.video_info(video_id))

    @app.post("/search", response_model=SearchResponse)
    def search(request: SearchRequest) -> SearchResponse:
        if request.vector is not None and len(request.vector) != engine.embedder.dim:
            raise VideosearchError(f"'vector' must have {engine.embedder.dim} numbers, got {len(request.vector)}")
        query = request.query if request.query is not None else request.vector
        hits = engine.search(query, k=request.k, exclude=request.exclude)  # type: ignore[arg-type]
        return SearchResponse(hits=[HitModel(**hit.__dict__) for hit in hits])

    return app
