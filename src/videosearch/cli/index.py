"""`videosearch index build | add`, `videosearch search` and `videosearch serve`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from videosearch.config import given_paths, load_config
from videosearch.corpus.release import ReleaseSplit, read_query_vectors, read_video_vectors, release_videos
from videosearch.corpus.video import list_videos
from videosearch.embed import PrecomputedEmbedder, Qwen3VLEmbedder, Qwen3VLEmbedderConfig, load_embedder
from videosearch.engine import SearchEngine
from videosearch.engine.engine import check_index_out
from videosearch.index import IndexConfig
from videosearch.shipped import shipped_retriever

#: decoding processes by default: one per core beyond the one that embeds, at most 4
DEFAULT_WORKERS = max(0, min(4, (os.cpu_count() or 1) - 1))
index_app = typer.Typer(help="Build and extend a video index.", no_args_is_help=True)


def _report_skipped(skipped: list) -> None:
    for item in skipped:
        typer.echo(f"skipped {item.path}: {item.reason}", err=True)


@index_app.command("build")
def build_command(
    videos: Path = typer.Option(..., "--videos", help="Folder of video files."),
    out: Path = typer.Option(..., "--out", help="Index folder to write (new, empty, or an index to replace)."),
    embedder: Path = typer.Option(None, "--embedder", help="Saved embedder folder (`videosearch retriever train`); "
                                  "default: the shipped checkpoints/mini/retriever."),
    backend: str = typer.Option("faiss", "--backend", help="faiss (default) or milvus."),
    factory: str = typer.Option("Flat", "--factory", help="FAISS factory string: Flat (exact), IVF256,Flat, HNSW32."),
    uri: str = typer.Option(None, "--uri", help="Milvus server URI (default: a milvus-lite file in the index)."),
    preset: Path = typer.Option(None, "--config", help="YAML preset whose `embedder` section sets up a "
                                "Qwen3-VL-Embedding retriever (configs/paper.yaml); --embedder replaces its "
                                "model_path."),
    workers: int = typer.Option(DEFAULT_WORKERS, "--workers", help="Processes decoding videos while the embedder "
                                "runs (0: decode in this process)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Videos embedded together."),
    save_every: int = typer.Option(500, "--save-every", help="Videos between saves of the unfinished index: a "
                                   "killed build, run again, resumes from its last save."),
) -> None:
    """Decode, embed and index every video of a folder; files that cannot be indexed are skipped and listed.

    A video's id is its file name without the extension; two files with the same id are both skipped.
    """
    config = IndexConfig(backend=backend, factory=factory, uri=uri)
    check_index_out(out)  # before the slow part: never replace a folder of the user's files
    if workers < 0 or batch_size < 1 or save_every < 1:
        raise typer.BadParameter("--workers must be >= 0, --batch-size and --save-every >= 1")
    if preset is not None:
        settings = load_config(Qwen3VLEmbedderConfig, preset, "embedder", **given_paths(model_path=embedder))
        model = Qwen3VLEmbedder.from_pretrained(settings.model_path, settings)
    else:
        model = load_embedder(embedder or shipped_retriever())
    engine, result = SearchEngine.build_into(out, videos, model, config, batch_size, workers, save_every)
    _report_skipped(result.skipped)
    typer.echo(f"indexed {len(engine)} videos into {out} ({len(result.skipped)} skipped); {result.throughput()}")


@index_app.command("import-release")
def import_release_command(
    data: Path = typer.Argument(..., help="Dataset folder of the reference release's prepared data (it holds "
                                "raw_annotation/ and the split folders)."),
    out: Path = typer.Option(..., "--out", help="Index folder to write (new, empty, or an index to replace)."),
    split: str = typer.Option("test", "--split", help="Split folder to index: test, train or val."),
    embedder: Path = typer.Option(None, "--embedder", help="The model its vectors were made with (a "
                                  "Qwen3-VL-Embedding-2B folder); default: the split's stored query vectors, "
                                  "enough for search, the walk and the oracle judge, not for SQR or HQR."),
    backend: str = typer.Option("faiss", "--backend", help="faiss (default) or milvus."),
    factory: str = typer.Option("Flat", "--factory", help="FAISS factory string: Flat (exact), IVF256,Flat, HNSW32."),
    uri: str = typer.Option(None, "--uri", help="Milvus server URI (default: a milvus-lite file in the index)."),
) -> None:
    """Index a split of the release's prepared data from its stored vectors, without embedding anything again.

    Each video is one vector (the release embeds whole videos); the agent reads its frames from the split's frame
    arrays, at the times their meta.jsonl gives.
    """
    config = IndexConfig(backend=backend, factory=factory, uri=uri)
    release = ReleaseSplit(data, split)
    release.check(("video_vectors", "docid2row"))
    check_index_out(out)
    ids, vectors = read_video_vectors(release)
    model = load_embedder(embedder) if embedder else PrecomputedEmbedder(read_query_vectors(release))
    durations, paths = release_videos(release, ids)
    SearchEngine.from_vectors(model, ids, vectors, durations, paths, config).save(out)
    frames = sum(bool(p) for p in paths)
    typer.echo(f"indexed {len(ids)} videos of {data} ({split}) into {out}; {frames} with frame arrays")


@index_app.command("add")
def add_command(
    index: Path = typer.Argument(..., help="Index folder."),
    videos: Path = typer.Option(..., "--videos", help="Folder of new video files."),
    workers: int = typer.Option(DEFAULT_WORKERS, "--workers", help="Processes decoding videos while the embedder "
                                "runs (0: decode in this process)."),
    replace: bool = typer.Option(False, "--replace", help="Let a file replace a video indexed from another file "
                                 "under the same id (default: skip it and say so)."),
) -> None:
    """Add videos to an existing index without rebuilding it; a file indexed before is re-indexed (replaced)."""
    engine = SearchEngine.load(index)
    if workers < 0:
        raise typer.BadParameter("--workers must be >= 0")
    result = engine.add_videos(list_videos(videos), replace=replace, workers=workers)
    if result.added or result.replaced:
        engine.save(index)
    for vid in result.replaced:
        typer.echo(f"replaced {vid}", err=True)
    _report_skipped(result.skipped)
    typer.echo(f"index {index} now holds {len(engine)} videos ({len(result.added)} added, {len(result.replaced)} "
               f"replaced, {len(result.skipped)} skipped); {result.throughput()}")


def search_command(
    index: Path = typer.Argument(..., help="Index folder."),
    query: str = typer.Argument(..., help="What happens in the moment you are looking for."),
    k: int = typer.Option(5, "-k", help="Number of videos to return."),
    exclude: list[str] = typer.Option([], "--exclude", help="Video id to leave out, repeatable."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
) -> None:
    """Search an index with a sentence."""
    if not query.strip():
        raise typer.BadParameter("the query is empty", param_hint="QUERY")
    hits = SearchEngine.load(index).search(query, k=k, exclude=exclude)
    if json_output:
        for hit in hits:
            typer.echo(json.dumps(hit.__dict__))
        return
    table = Table(title=query)
    for column in ("rank", "video", "score", "start s", "end s"):
        table.add_column(column)
    for rank, hit in enumerate(hits, 1):
        table.add_row(str(rank), hit.video_id, f"{hit.score:.3f}", f"{hit.start_s:.1f}", f"{hit.end_s:.1f}")
    Console().print(table)


def serve_command(
    index: Path = typer.Argument(..., help="Index folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
) -> None:
    """Serve the index over HTTP: POST /search, GET /videos/{id}, GET /healthz."""
    import uvicorn

    from videosearch.engine.server import create_app

    # The app caps the body and its read time; uvicorn closes idle keep-alive connections (after 15 s: longer than
    # httpx's 5 s, so our client drops an idle connection before the server does), caps the request line and
    # headers (h11) and answers 503 past `limit_concurrency` connections. It has no timeout for a client that
    # trickles its headers: in front of untrusted clients, put a reverse proxy with header timeouts.
    uvicorn.run(create_app(SearchEngine.load(index)), host=host, port=port, http="h11", timeout_keep_alive=15,
                h11_max_incomplete_event_size=16 * 1024, limit_concurrency=256, timeout_graceful_shutdown=10)
