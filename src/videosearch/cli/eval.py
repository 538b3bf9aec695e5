"""``videosearch eval``: score a predictions file against its annotations.

Run:
    videosearch eval --pred runs/charades/predictions.jsonl --annotations data/charades_fig_test.jsonl
    videosearch eval --pred P --annotations A --json    # one JSON object, NaN written as null
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.console import Console

from videosearch.corpus.annotations import read_moments
from videosearch.eval.predictions import read_predictions
from videosearch.eval.report import evaluate, format_table


def eval_command(
    pred: Path = typer.Option(..., "--pred", help="Predictions file (JSONL, one object per query)."),
    annotations: Path = typer.Option(..., "--annotations", help="Annotation file with the ground truth."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    query_field: str = typer.Option("fig_desc", "--query-field", help="Annotation field that holds the query."),
) -> None:
    """Score predictions: VR R@k, VCMR R@1, VER, mIoU and cost per query."""
    predictions = read_predictions(pred)
    moments = read_moments(annotations, query_field=query_field).moments
    metrics = evaluate(predictions, moments)
    if json_output:
        # JSON has no NaN; an undefined figure (nothing to average) becomes null.
        finite = {key: None if math.isnan(value) else value for key, value in metrics.items()}
        typer.echo(json.dumps(finite))
    else:
        Console().print(format_table(metrics))
