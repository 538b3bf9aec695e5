"""``videosearch eval``: score a predictions file against its annotations.

Run:
    videosearch eval --pred runs/charades/predictions.jsonl --annotations data/charades_fig_test.jsonl
    videosearch eval --pred P --annotations A --json    # one JSON object, NaN written as null
    videosearch eval --pred oneshot.jsonl --pred sqr.jsonl --annotations A   # side by side, paired deltas
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.console import Console

from videosearch.corpus.annotations import read_moments
from videosearch.eval.predictions import read_predictions
from videosearch.eval.report import compare, format_comparison


def eval_command(
    pred: list[Path] = typer.Option(..., "--pred", help="Predictions file (JSONL); repeat to compare runs."),
    annotations: Path = typer.Option(..., "--annotations", help="Annotation file with the ground truth."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    query_field: str = typer.Option("fig_desc", "--query-field", help="Annotation field that holds the query."),
) -> None:
    """Score predictions: VR R@k, VCMR R@1, VER, mIoU and cost per query, with bootstrap intervals."""
    moments = read_moments(annotations, query_field=query_field).moments
    names = [p.stem if [q.stem for q in pred].count(p.stem) == 1 else f"{i + 1}:{p.stem}" for i, p in enumerate(pred)]
    results = compare({name: read_predictions(path) for name, path in zip(names, pred)}, moments)
    if json_output:
        # JSON has no NaN; an undefined figure (nothing to average) becomes null.
        finite = {name: {key: None if math.isnan(value) else value for key, value in metrics.items()}
                  for name, metrics in results.items()}
        typer.echo(json.dumps(finite[names[0]] if len(names) == 1 else finite))
    else:
        Console().print(format_comparison(results if len(names) > 1 else {"value": results[names[0]]}))
