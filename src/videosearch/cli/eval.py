"""``videosearch eval``: score predictions files against their annotations, or show one episode.

Run:
    videosearch eval --pred runs/charades/predictions.jsonl --annotations data/charades_fig_test.jsonl
    videosearch eval --pred P --annotations A --json    # one JSON object, NaN written as null
    videosearch eval --pred oneshot.jsonl --pred sqr.jsonl --annotations A   # side by side, paired deltas
    videosearch eval --pred sqr.jsonl --annotations A --transcript auto      # one episode, turn by turn
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.console import Console

from videosearch.corpus.annotations import read_moments
from videosearch.errors import ConfigError
from videosearch.eval.predictions import read_predictions
from videosearch.eval.report import compare, format_comparison
from videosearch.eval.transcript import AUTO, find_episode, format_transcript, pick_query


def eval_command(
    pred: list[Path] = typer.Option(..., "--pred", help="Predictions file (JSONL); repeat to compare runs."),
    annotations: Path = typer.Option(..., "--annotations", help="Annotation file with the ground truth."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    query_field: str = typer.Option("fig_desc", "--query-field", help="Annotation field that holds the query."),
    transcript: str | None = typer.Option(
        None, "--transcript", metavar="QID",
        help=f"Print this query's episode turn by turn instead of the table (one --pred); '{AUTO}' picks one "
        "that refined and ended matched on the ground truth."),
) -> None:
    """Score predictions: VR R@k, VCMR R@1, VER, mIoU and cost per query with bootstrap intervals; or one episode."""
    if transcript is not None and (len(pred) > 1 or json_output):
        raise ConfigError("--transcript shows one episode of one predictions file: pass a single --pred, "
                          "without --json")
    moments = read_moments(annotations, query_field=query_field).moments
    if transcript is not None:
        predictions = read_predictions(pred[0])
        qid = pick_query(predictions, moments) if transcript == AUTO else transcript
        Console().print(format_transcript(*find_episode(predictions, moments, qid)))
        return
    names = [p.stem if [q.stem for q in pred].count(p.stem) == 1 else f"{i + 1}:{p.stem}" for i, p in enumerate(pred)]
    results = compare({name: read_predictions(path) for name, path in zip(names, pred)}, moments)
    if json_output:
        # JSON has no NaN; an undefined figure (nothing to average) becomes null.
        finite = {name: {key: None if math.isnan(value) else value for key, value in metrics.items()}
                  for name, metrics in results.items()}
        typer.echo(json.dumps(finite[names[0]] if len(names) == 1 else finite))
    else:
        Console().print(format_comparison(results if len(names) > 1 else {"value": results[names[0]]}))
