"""Score a predictions file against its annotations and show the figures as a table.

``evaluate`` joins predictions to annotations on ``qid`` and returns a flat dict of metrics; every
query in the annotations counts, and a query without a prediction is a miss. ``format_table``
renders that dict with rich. The CLI front end is ``videosearch eval --pred P --annotations A``.

Metric keys of :func:`evaluate` (quality figures are percentages 0-100):
    ``n_queries``: queries in the annotations; ``n_predicted``: those with a prediction;
    ``n_judgements``: judgements made over all predicted queries.
    ``vr_turn1@{k}``: VR R@k of ``ranking_turn1`` (the search engine alone), e.g. ``vr_turn1@1``.
    ``vr@{k}``: VR R@k of ``ranking`` (the final query), e.g. ``vr@100``.
    ``vcmr@{m}``: VCMR R@1 at IoU m, the threshold written with ``{m:g}``, e.g. ``vcmr@0.5``.
    ``ver``: verification accuracy over every judgement; a query without prediction adds none.
    ``miou``: mean over all queries of the final span's IoU when the final answer is ``matched``
        on the ground-truth video, else 0.
    ``mean_turns``, ``generated_tokens``, ``latent_steps``, ``seconds_per_query``: per query,
        the number of judgements and the sums over its judgements, averaged over the predicted
        queries (a missing query has no cost to count).
    ``vr@1_ci_low`` / ``vr@1_ci_high``, ``vcmr@0.5_ci_low`` / ``vcmr@0.5_ci_high``: percentile bootstrap
        95 % interval over queries.
:func:`compare` adds, for every run after the first, ``delta_vr@1`` and ``delta_vcmr@0.5`` with their paired
bootstrap intervals (``delta_vr@1_ci_low`` ...): the same resampled queries for both runs.
A figure with nothing to average (no judgements, no predicted query) is NaN.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from rich.console import Group, RenderableType
from rich.table import Table

from videosearch.corpus.types import Moment
from videosearch.errors import VideosearchError
from videosearch.eval import metrics
from videosearch.eval.predictions import Prediction

CI_KEYS = ("vr@1", "vcmr@0.5")  # the figures reported with a bootstrap interval
TABLE_WIDTH = 80  # the terminal width the tables are laid out to read whole in
RUN_WIDTH = 14  # the intervals table's run names wrap beyond this


def per_query_scores(
    predictions: Sequence[Prediction],
    moments: Sequence[Moment],
    ks: Sequence[int] = (1, 5, 10, 100),
    ious: Sequence[float] = (0.3, 0.5, 0.7),
    *,
    ignore_unknown_qids: bool = False,
) -> dict[str, np.ndarray]:
    """Per-query scores in annotation order, ready for means or :func:`metrics.bootstrap_ci`.

    Args:
        predictions: one per predicted query, any order.
        moments: the ground truth, one per query.
        ks: VR cut-offs.
        ious: VCMR IoU thresholds.
        ignore_unknown_qids: drop predictions whose qid is not in ``moments`` instead of failing.

    Returns:
        Arrays of shape (N,), N = ``len(moments)``: bool ``vr_turn1@{k}``, ``vr@{k}`` and
        ``vcmr@{m}`` hits, and float64 ``miou``, the per-query IoU in [0, 1] (:func:`evaluate`
        reports the means of these, in percent).

    Raises:
        VideosearchError: no moments, duplicate qids in the moments, or (by default) predictions
            for qids the annotations do not have, which means the wrong annotation file.
    """
    return _score(join_predictions(predictions, moments, ignore_unknown_qids), moments, ks, ious)


def evaluate(
    predictions: Sequence[Prediction],
    moments: Sequence[Moment],
    ks: Sequence[int] = (1, 5, 10, 100),
    ious: Sequence[float] = (0.3, 0.5, 0.7),
    *,
    ignore_unknown_qids: bool = False,
) -> dict[str, float]:
    """Every metric of DESIGN.md section 5 over all annotated queries; keys in the module docstring.

    Args:
        predictions: one per predicted query, any order.
        moments: the ground truth, one per query; every one counts.
        ks: VR cut-offs.
        ious: VCMR IoU thresholds.
        ignore_unknown_qids: drop predictions whose qid is not in ``moments`` instead of failing.

    Returns:
        Metric name -> value: counts as ints, quality figures as percentages, costs per query.

    Raises:
        VideosearchError: as :func:`per_query_scores`.
    """
    by_qid = join_predictions(predictions, moments, ignore_unknown_qids)
    scores = _score(by_qid, moments, ks, ious)
    joined = [(by_qid[moment.qid], moment.video_id) for moment in moments if moment.qid in by_qid]
    judgements = [(judgement, gt_video) for pred, gt_video in joined for judgement in pred.judgements]
    result: dict[str, float] = {
        "n_queries": len(moments),
        "n_predicted": len(joined),
        "n_judgements": len(judgements),
    }
    for key, values in scores.items():
        result[key] = 100.0 * float(values.mean())
    for key in CI_KEYS:
        if key in scores:
            low, high = metrics.bootstrap_ci(scores[key].astype(np.float64))
            result[f"{key}_ci_low"], result[f"{key}_ci_high"] = 100.0 * low, 100.0 * high
    result["ver"] = 100.0 * metrics.verification_accuracy(
        [judgement.answer for judgement, _ in judgements],
        [judgement.video for judgement, _ in judgements],
        [gt_video for _, gt_video in judgements],
    )
    result["ver_balanced"] = 100.0 * metrics.verification_balanced_accuracy(
        [judgement.answer for judgement, _ in judgements],
        [judgement.video for judgement, _ in judgements],
        [gt_video for _, gt_video in judgements],
    )
    turns = [pred.judgements for pred, _ in joined]
    result["mean_turns"] = metrics.mean_turns([len(turn) for turn in turns])
    result["generated_tokens"] = metrics.mean_total_per_query([[j.generated_tokens for j in turn] for turn in turns])
    result["latent_steps"] = metrics.mean_total_per_query([[j.latent_steps for j in turn] for turn in turns])
    result["seconds_per_query"] = metrics.mean_total_per_query([[j.seconds for j in turn] for turn in turns])
    return result


def compare(runs: dict[str, Sequence[Prediction]], moments: Sequence[Moment]) -> dict[str, dict[str, float]]:
    """:func:`evaluate` for each run, plus paired bootstrap intervals of its difference to the first run."""
    results = {name: evaluate(predictions, moments) for name, predictions in runs.items()}
    scores = {name: per_query_scores(predictions, moments) for name, predictions in runs.items()}
    first = next(iter(runs))
    for name in list(runs)[1:]:
        for key in CI_KEYS:
            difference = scores[name][key].astype(np.float64) - scores[first][key].astype(np.float64)
            low, high = metrics.bootstrap_ci(difference)
            results[name][f"delta_{key}"] = 100.0 * float(difference.mean())
            results[name][f"delta_{key}_ci_low"], results[name][f"delta_{key}_ci_high"] = 100.0 * low, 100.0 * high
    return results


def format_table(metrics_by_key: dict[str, float]) -> RenderableType:
    """Render :func:`evaluate`'s dict: one row per figure, with the bootstrap intervals in a third column."""
    return format_comparison({"value": metrics_by_key})


def format_comparison(metrics_by_run: dict[str, dict[str, float]]) -> RenderableType:
    """Render :func:`compare`'s dicts so that every figure reads whole in 80 columns, for up to 5 runs.

    One row per figure (VR R@k at turn 1 and final, VCMR R@1 per IoU, VER, mIoU, costs) and one column
    per run. A single run gets its bootstrap intervals as a third column; several runs get them in a
    second table, one row per run and figure, with the paired difference to the first run.

    Args:
        metrics_by_run: run name (a short column header, e.g. a file stem) -> :func:`evaluate`'s dict.

    Returns:
        A rich renderable (a table, or a group of two) for ``Console.print``.
    """
    figures = _figures_table(metrics_by_run)
    if len(metrics_by_run) == 1:
        return figures
    return Group(figures, _intervals_table(metrics_by_run))


def _figures_table(metrics_by_run: dict[str, dict[str, float]]) -> Table:
    runs = list(metrics_by_run.values())
    n_queries = int(runs[0]["n_queries"])
    predicted = {int(m["n_predicted"]) for m in runs}
    title = f"{n_queries} queries, {predicted.pop()} predicted" if len(predicted) == 1 else f"{n_queries} queries"
    with_ci = len(runs) == 1
    sections = _figure_rows(runs[0])
    if len(predicted) > 1:  # runs that stopped early: the title cannot give one count
        sections.insert(0, [("predicted", "n_predicted", 0)])
    rows = [[(label, [_number(m.get(key, math.nan), digits) for m in runs]
              + ([_interval(runs[0], key) if key in CI_KEYS else ""] if with_ci else []))
             for label, key, digits in section] for section in sections]
    # Run names too long for 80 columns wrap at their - _ . : (rich would cut a word it cannot wrap).
    label_width = max(len(label) for section in rows for label, _ in section)
    ci_width = max(len(cells[-1]) for section in rows for _, cells in section) if with_ci else 0
    room = TABLE_WIDTH - 1 - 3 * (len(runs) + 1 + with_ci) - label_width - ci_width
    value_widths = [max(len(cells[i]) for section in rows for _, cells in section) for i in range(len(runs))]
    table = Table(title=title)
    table.add_column("metric")
    for name, width in zip(metrics_by_run, _header_widths(list(metrics_by_run), value_widths, room)):
        table.add_column(_wrap_name(name, width), justify="right", no_wrap=True)
    if with_ci:
        table.add_column("95 % CI", justify="right", no_wrap=True)
    for section in rows:
        for i, (label, cells) in enumerate(section):
            table.add_row(label, *cells, end_section=i == len(section) - 1)
    return table


def _header_widths(names: list[str], value_widths: list[int], room: int) -> list[int]:
    """Column widths that fit `room` by narrowing the longest names, never below a column's widest value."""
    widths = [max(len(name), value_width) for name, value_width in zip(names, value_widths)]
    while sum(widths) > room and any(width > least for width, least in zip(widths, value_widths)):
        widest = max((i for i in range(len(widths)) if widths[i] > value_widths[i]), key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _wrap_name(name: str, width: int) -> str:
    """`name` broken into lines of at most `width` characters, after a - _ . or : where it has one."""
    assert width >= 1, width
    lines = [""]
    for piece in re.findall(r"[^-_.:]*[-_.:]?", name)[:-1]:  # "policy-sqr-t3" -> "policy-", "sqr-", "t3"
        while piece:
            if lines[-1] and len(lines[-1]) + len(piece) > width:
                lines.append("")
            take = width - len(lines[-1])
            lines[-1] += piece[:take]
            piece = piece[take:]
    return "\n".join(lines)


def _figure_rows(some: dict[str, float]) -> list[list[tuple[str, str, int]]]:
    """Sections of (label, metric key, decimals), in the order the table shows them."""
    ks = _suffixes(some, "vr@")
    return [
        [(f"VR R@{k}, turn 1", f"vr_turn1@{k}", 1) for k in ks],
        [(f"VR R@{k}, final", f"vr@{k}", 1) for k in ks],
        [(f"VCMR R@1, IoU {m}", f"vcmr@{m}", 1) for m in _suffixes(some, "vcmr@")],
        [("VER", "ver", 1), ("VER, balanced", "ver_balanced", 1), ("mIoU", "miou", 1)],
        [("turns / query", "mean_turns", 2), ("tokens / query", "generated_tokens", 1),
         ("latent steps / query", "latent_steps", 1), ("seconds / query", "seconds_per_query", 3)],
    ]


def _intervals_table(metrics_by_run: dict[str, dict[str, float]]) -> Table:
    """One row per run and interval figure: value, 95 % CI, paired difference to the first run and its CI."""
    first = next(iter(metrics_by_run))
    table = Table(title=f"95 % bootstrap intervals over queries; Δ: paired difference to {first}")
    table.add_column("figure", overflow="fold")
    table.add_column("run", no_wrap=True)
    for header in ("value", "95 % CI", "Δ", "Δ 95 % CI"):
        table.add_column(header, justify="right", no_wrap=True)
    labels = {"vr@1": "VR R@1", "vcmr@0.5": "VCMR R@1, IoU 0.5"}
    for key in CI_KEYS:
        for i, (name, m) in enumerate(metrics_by_run.items()):
            delta = m.get(f"delta_{key}")
            table.add_row(
                labels[key] if i == 0 else "",
                _wrap_name(name, RUN_WIDTH),
                _number(m.get(key, math.nan), 1),
                _interval(m, key),
                "-" if delta is None else _signed(delta),
                _interval(m, f"delta_{key}"),
                end_section=i == len(metrics_by_run) - 1,
            )
    return table


def _interval(metrics_by_key: dict[str, float], key: str) -> str:
    if f"{key}_ci_low" not in metrics_by_key:
        return "-"
    return f"[{_number(metrics_by_key[key + '_ci_low'], 1)}, {_number(metrics_by_key[key + '_ci_high'], 1)}]"


def _signed(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.1f}"


def join_predictions(
    predictions: Sequence[Prediction], moments: Sequence[Moment], ignore_unknown_qids: bool = False
) -> dict[str, Prediction]:
    """Predictions by qid, after checking that they and the annotations belong together.

    Args:
        predictions: one per predicted query, any order.
        moments: the ground truth, one per query.
        ignore_unknown_qids: drop predictions whose qid is not in ``moments`` instead of failing.

    Returns:
        qid -> prediction in the order of ``predictions``, for the qids ``moments`` has.

    Raises:
        VideosearchError: as :func:`per_query_scores`.
    """
    if not moments:
        raise VideosearchError("the annotations hold no queries; nothing to evaluate")
    repeated = _repeated(moment.qid for moment in moments)
    if repeated:
        raise VideosearchError(f"the annotations repeat qid(s) {_few(repeated)}; each query needs its own qid")
    repeated = _repeated(pred.qid for pred in predictions)
    if repeated:
        raise VideosearchError(f"several predictions share qid(s) {_few(repeated)}; keep one per query")
    known = {moment.qid for moment in moments}
    unknown = [pred.qid for pred in predictions if pred.qid not in known]
    if unknown and not ignore_unknown_qids:
        raise VideosearchError(
            f"{len(unknown)} of {len(predictions)} predictions have qids that are not in the annotations "
            f"({_few(unknown)}); pass the annotation file the predictions were made for"
        )
    return {pred.qid: pred for pred in predictions if pred.qid in known}


def _score(
    by_qid: dict[str, Prediction], moments: Sequence[Moment], ks: Sequence[int], ious: Sequence[float]
) -> dict[str, np.ndarray]:
    """The body of :func:`per_query_scores`, on predictions already joined to the moments."""
    preds = [by_qid.get(moment.qid) for moment in moments]
    finals = [None if pred is None else pred.judgements[-1] for pred in preds]
    gt_videos = [moment.video_id for moment in moments]
    moment_args = (
        [None if final is None else final.answer for final in finals],
        [None if final is None else final.video for final in finals],
        [None if final is None else final.span for final in finals],
        gt_videos,
        [(moment.start_s, moment.end_s) for moment in moments],
        [moment.duration_s for moment in moments],
    )
    scores: dict[str, np.ndarray] = {}
    turn1_rankings = [None if pred is None else pred.ranking_turn1 for pred in preds]
    final_rankings = [None if pred is None else pred.ranking for pred in preds]
    for k in ks:
        scores[f"vr_turn1@{k}"] = metrics.video_hits_at_k(turn1_rankings, gt_videos, k)
    for k in ks:
        scores[f"vr@{k}"] = metrics.video_hits_at_k(final_rankings, gt_videos, k)
    for m in ious:
        scores[f"vcmr@{m:g}"] = metrics.vcmr_hits_at_1(*moment_args, iou_threshold=m)
    scores["miou"] = metrics.moment_ious(*moment_args)
    return scores


def _few(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(item) for item in items[:limit])
    return shown + (f", ... {len(items) - limit} more" if len(items) > limit else "")


def _repeated(qids: Iterable[str]) -> list[str]:
    return sorted(qid for qid, count in Counter(qids).items() if count > 1)


def _suffixes(metrics_by_key: dict[str, float], prefix: str) -> list[str]:
    return [key[len(prefix) :] for key in metrics_by_key if key.startswith(prefix) and "_ci_" not in key]


def _number(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
