"""Figures written as PNG files with matplotlib (no display needed): training curves and metrics by turns."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never a window, never a display server

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def plot_training_log(log: Path, out: Path, keys: list[str]) -> None:
    """One panel per key of a `log.jsonl` (one JSON record per step), against the step; keys a log lacks are
    left out."""
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    keys = [k for k in keys if any(k in r for r in records)]
    if not records or not keys:
        return
    columns = min(4, len(keys))
    rows = -(-len(keys) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    for axis, key in zip(axes.flat, keys):
        steps = [r["step"] for r in records if key in r]
        axis.plot(steps, [r[key] for r in records if key in r], linewidth=1)
        axis.set_title(key, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(keys):]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
