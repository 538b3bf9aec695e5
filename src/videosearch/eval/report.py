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
A figure with nothing to average (no judgements, no predicted query) is NaN.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from rich.table import Table

from videosearch.corpus.types import Moment
from videosearch.errors import VideosearchError
from videosearch.eval import metrics
from videosearch.eval.predictions import Prediction


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
    return _score(_join(predictions, moments, ignore_unknown_qids), moments, ks, ious)


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
    by_qid = _join(predictions, moments, ignore_unknown_qids)
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
    result["ver"] = 100.0 * metrics.verification_accuracy(
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


def format_table(metrics_by_key: dict[str, float]) -> Table:
    """Render :func:`evaluate`'s dict: VR (turn 1 and final), VCMR, VER, mIoU and the costs.

    Args:
        metrics_by_key: the dict returned by :func:`evaluate`.

    Returns:
        A two-column rich table; slashed rows read like the paper (``16.5/13.4/8.2``).
    """
    n_queries = int(metrics_by_key["n_queries"])
    n_predicted = int(metrics_by_key["n_predicted"])
    table = Table(title=f"{n_queries} queries, {n_predicted} predicted")
    table.add_column("metric")
    table.add_column("value", justify="right")
    ks = _suffixes(metrics_by_key, "vr@")
    ms = _suffixes(metrics_by_key, "vcmr@")
    cut_offs = "/".join(ks)
    table.add_row(f"VR R@{cut_offs}, turn 1", _slashed(metrics_by_key, "vr_turn1@", ks))
    table.add_row(f"VR R@{cut_offs}, final", _slashed(metrics_by_key, "vr@", ks))
    table.add_row(f"VCMR R@1, IoU {'/'.join(ms)}", _slashed(metrics_by_key, "vcmr@", ms))
    table.add_row("VER", _number(metrics_by_key["ver"], 1))
    table.add_row("mIoU", _number(metrics_by_key["miou"], 1))
    table.add_row("turns / query", _number(metrics_by_key["mean_turns"], 2))
    table.add_row("generated tokens / query", _number(metrics_by_key["generated_tokens"], 1))
    table.add_row("latent steps / query", _number(metrics_by_key["latent_steps"], 1))
    table.add_row("seconds / query", _number(metrics_by_key["seconds_per_query"], 3))
    return table


def _join(
    predictions: Sequence[Prediction], moments: Sequence[Moment], ignore_unknown_qids: bool
) -> dict[str, Prediction]:
    """Predictions by qid, after checking that they and the annotations belong together."""
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
    return [key[len(prefix) :] for key in metrics_by_key if key.startswith(prefix)]


def _slashed(metrics_by_key: dict[str, float], prefix: str, suffixes: list[str]) -> str:
    return "/".join(_number(metrics_by_key.get(prefix + suffix, math.nan), 1) for suffix in suffixes)


def _number(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
