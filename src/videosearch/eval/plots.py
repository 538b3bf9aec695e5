"""Figures written as PNG files with matplotlib (no display needed): training curves and metrics by turns."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only: never a window, never a display server

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

SMOOTHING = 5  # steps in the running mean drawn over a training curve


def plot_training_log(log: Path, out: Path, keys: list[str]) -> None:
    """One panel per key of a `log.jsonl` (one JSON record per step) against the step, each step's value faint and
    their running mean over `SMOOTHING` steps drawn over it; keys a log lacks are left out."""
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    keys = [k for k in keys if any(k in r for r in records)]
    if not records or not keys:
        return
    columns = min(4, len(keys))
    rows = -(-len(keys) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    for axis, key in zip(axes.flat, keys):
        steps = [r["step"] for r in records if key in r]
        values = np.array([r[key] for r in records if key in r], dtype=np.float64)
        line, = axis.plot(steps, values, linewidth=0.8, alpha=0.35)
        window = min(SMOOTHING, len(values))
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        axis.plot(steps[window - 1:], smooth, linewidth=1.6, color=line.get_color())
        axis.set_title(key, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(keys):]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def plot_by_turns(rows: dict[str, dict[str, dict[str, float]]], keys: list[str], titles: list[str],
                  out: Path) -> None:
    """One panel per metric key: each row's value against the turn limit, its `_ci_low` / `_ci_high` interval as an
    error bar (rows side by side at each turn, so the bars stay readable); `rows` maps a method to {turns: figures}."""
    figure, axes = plt.subplots(1, len(keys), figsize=(5.6 * len(keys), 4.0), squeeze=False)
    width = 0.5 / max(len(rows), 1)
    colours = plt.get_cmap("tab10" if len(rows) <= 10 else "tab20").colors  # one per row: no two rows share one
    markers = "osD^v<>ph*"
    for axis, key, title in zip(axes[0], keys, titles):
        for k, (name, by_turn) in enumerate(rows.items()):
            turns = sorted(int(t) for t in by_turn)
            shift = (k - (len(rows) - 1) / 2) * width
            values = [by_turn[str(t)][key] for t in turns]
            low = [by_turn[str(t)].get(f"{key}_ci_low", v) for t, v in zip(turns, values)]
            high = [by_turn[str(t)].get(f"{key}_ci_high", v) for t, v in zip(turns, values)]
            axis.errorbar([t + shift for t in turns], values,
                          yerr=[[v - lo for v, lo in zip(values, low)], [hi - v for v, hi in zip(values, high)]],
                          color=colours[k % len(colours)], marker=markers[k % len(markers)], markersize=4,
                          linewidth=1.2, capsize=2, elinewidth=0.8, label=name)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("turn limit", fontsize=9)
        axis.set_xticks(sorted({int(t) for by_turn in rows.values() for t in by_turn}))
        axis.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
