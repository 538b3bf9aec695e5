"""``videosearch eval``: score predictions files against their annotations, or show one episode.

Run:
    videosearch eval --pred runs/charades/predictions.jsonl --annotations data/charades_fig_test.jsonl
    videosearch eval --pred P --annotations A --json    # one JSON object, NaN written as null
    videosearch eval --pred oneshot.jsonl --pred sqr.jsonl --annotations A   # side by side, paired deltas
    videosearch eval --pred sqr.jsonl@1 --pred sqr.jsonl --annotations A     # @N: the episodes cut after turn N
    videosearch eval --pred sqr.jsonl --annotations A --transcript auto      # one episode, turn by turn
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import typer
from rich.console import Console

from videosearch.corpus.annotations import read_moments
from videosearch.errors import ConfigError
from videosearch.eval.predictions import Prediction, read_predictions
from videosearch.eval.report import compare, format_comparison
from videosearch.eval.transcript import AUTO, find_episode, format_transcript, pick_query
from videosearch.eval.turns import truncate_episode


def read_run(spec: Path) -> tuple[str, list[Prediction]]:
    """A predictions file, or `FILE@N`: its episodes cut after turn N, exactly what a run limited to N turns
    writes (`eval.turns.truncate_episode`); named by the file's stem (and `@N`)."""
    cut = re.fullmatch(r"(.+)@(\d+)", str(spec))
    if cut is None or spec.exists():
        return spec.stem, read_predictions(spec)
    path, turns = Path(cut[1]), int(cut[2])
    if turns < 1:
        raise ConfigError(f"{spec}: the turn limit after @ must be >= 1")
    return f"{path.stem}@{turns}", [truncate_episode(p, turns) for p in read_predictions(path)]


def eval_command(
    pred: list[Path] = typer.Option(..., "--pred", help="Predictions file (JSONL), or FILE@N for its episodes cut "
                                    "after turn N; repeat to compare runs."),
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
        predictions = read_run(pred[0])[1]
        qid = pick_query(predictions, moments) if transcript == AUTO else transcript
        Console().print(format_transcript(*find_episode(predictions, moments, qid)))
        return
    runs = [read_run(path) for path in pred]
    stems = [stem for stem, _ in runs]
    names = [stem if stems.count(stem) == 1 else f"{i + 1}:{stem}" for i, stem in enumerate(stems)]
    results = compare({name: predictions for name, (_, predictions) in zip(names, runs)}, moments)
    if json_output:
        # JSON has no NaN; an undefined figure (nothing to average) becomes null.
        finite = {name: {key: None if math.isnan(value) else value for key, value in metrics.items()}
                  for name, metrics in results.items()}
        typer.echo(json.dumps(finite[names[0]] if len(names) == 1 else finite))
    else:
        Console().print(format_comparison(results if len(names) > 1 else {"value": results[names[0]]}))
