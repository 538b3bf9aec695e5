"""`videosearch baseline run`: the one-shot search baseline, written as a predictions file."""

from __future__ import annotations

from pathlib import Path

import typer

from videosearch.corpus.annotations import read_moments
from videosearch.engine import SearchEngine
from videosearch.eval.baseline import run_search_baseline
from videosearch.eval.predictions import existing_predictions, write_predictions

baseline_app = typer.Typer(help="Baselines without a policy.", no_args_is_help=True)


@baseline_app.command("run")
def run_command(
    index: Path = typer.Argument(..., help="Index folder."),
    annotations: Path = typer.Option(..., "--annotations", help="Queries (VERIFIED jsonl, Charades-STA, ...)."),
    out: Path = typer.Option(..., "--out", help="Predictions file to write (JSONL); an existing one is "
                              "replaced, a file of anything else refused."),
    query_field: str = typer.Option("fig_desc", "--query-field", help="Annotation field that holds the query."),
) -> None:
    """Top-1 video of the search engine, its best segment as the span."""
    existing_predictions(out)  # an existing predictions file is replaced, a file of anything else refused
    moments = read_moments(annotations, query_field=query_field).moments
    predictions = run_search_baseline(SearchEngine.load(index), moments)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_predictions(out, predictions)
    typer.echo(f"wrote {len(predictions)} predictions to {out}")
