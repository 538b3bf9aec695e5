"""VCMR metrics as pure functions (DESIGN.md section 5): plain sequences and floats in, numpy arrays and floats out.

Every function that takes per-query sequences expects them aligned, one entry per query in the
annotations. A query without a prediction is passed as ``None`` ranking / answer / video / span,
and counts as a miss. Recall and accuracy figures are fractions in [0, 1]; the report turns them
into percentages. Spans are ``(start_s, end_s)`` in seconds.

Example:
    >>> temporal_iou((0.0, 10.0), (5.0, 15.0))
    0.3333333333333333
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MATCHED = "matched"

Span = Sequence[float]


def clamp_span(span: Span, duration_s: float) -> tuple[float, float]:
    """Order a span and clamp it to the video, ``[0, duration_s]``.

    Args:
        span: ``(start_s, end_s)`` in seconds; a reversed span (start after end) is swapped.
        duration_s: the video's duration in seconds; NaN means unknown, so no upper clamp.

    Returns:
        ``(start_s, end_s)`` with ``0 <= start_s <= end_s`` (``<= duration_s`` when known).
    """
    start_s, end_s = sorted((float(span[0]), float(span[1])))
    upper_s = math.inf if math.isnan(duration_s) else float(duration_s)
    return min(max(start_s, 0.0), upper_s), min(max(end_s, 0.0), upper_s)


def temporal_iou(pred: Span, gt: Span) -> float:
    """Temporal intersection over union of two spans; a reversed span is swapped first.

    Args:
        pred: predicted ``(start_s, end_s)``.
        gt: ground-truth ``(start_s, end_s)``.

    Returns:
        IoU in [0, 1]; 0.0 when both spans have zero length (the union is empty).
    """
    pred_start, pred_end = sorted((float(pred[0]), float(pred[1])))
    gt_start, gt_end = sorted((float(gt[0]), float(gt[1])))
    inter = max(0.0, min(pred_end, gt_end) - max(pred_start, gt_start))
    union = (pred_end - pred_start) + (gt_end - gt_start) - inter
    return inter / union if union > 0.0 else 0.0


def video_hits_at_k(rankings: Sequence[Sequence[str] | None], gt_video_ids: Sequence[str], k: int) -> np.ndarray:
    """Whether each query's ground-truth video is among the first ``k`` of its ranking.

    Args:
        rankings: per query, video ids best first, or ``None`` for a query without prediction.
        gt_video_ids: per query, the ground-truth video id.
        k: cut-off, ``k >= 1``; a ranking shorter than ``k`` is used as it is.

    Returns:
        bool array (N,).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _check_aligned(rankings=rankings, gt_video_ids=gt_video_ids)
    return np.array(
        [ranking is not None and gt in ranking[:k] for ranking, gt in zip(rankings, gt_video_ids)], dtype=bool
    )


def video_recall_at_k(rankings: Sequence[Sequence[str] | None], gt_video_ids: Sequence[str], k: int) -> float:
    """Video retrieval recall at ``k`` (VR R@k), a fraction in [0, 1]; NaN for no queries.

    Args:
        rankings: per query, video ids best first, or ``None`` for a query without prediction.
        gt_video_ids: per query, the ground-truth video id.
        k: cut-off, ``k >= 1``.

    Returns:
        The fraction of queries whose ground-truth video is in the top ``k``.
    """
    return _mean(video_hits_at_k(rankings, gt_video_ids, k))


def moment_ious(
    answers: Sequence[str | None],
    judged_video_ids: Sequence[str | None],
    pred_spans: Sequence[Span | None],
    gt_video_ids: Sequence[str],
    gt_spans: Sequence[Span],
    durations_s: Sequence[float],
) -> np.ndarray:
    """Per-query IoU of the final answer: the mIoU and VCMR building block.

    A query scores the IoU of its clamped final span with its clamped ground-truth span when its
    final answer is ``matched``, the judged video is the ground-truth video and a span was given;
    otherwise it scores 0.

    Args:
        answers: per query, the final judgement's answer, or ``None`` without prediction.
        judged_video_ids: per query, the video of the final judgement, or ``None``.
        pred_spans: per query, the final ``(start_s, end_s)``, or ``None``.
        gt_video_ids: per query, the ground-truth video id.
        gt_spans: per query, the ground-truth ``(start_s, end_s)``.
        durations_s: per query, the ground-truth video's duration (NaN when unknown).

    Returns:
        float64 array (N,) in [0, 1].
    """
    _check_aligned(
        answers=answers,
        judged_video_ids=judged_video_ids,
        pred_spans=pred_spans,
        gt_video_ids=gt_video_ids,
        gt_spans=gt_spans,
        durations_s=durations_s,
    )
    grounded = _grounded(answers, judged_video_ids, pred_spans, gt_video_ids)
    ious = np.zeros(len(answers), dtype=np.float64)
    for i in np.flatnonzero(grounded):
        span = pred_spans[i]
        assert span is not None
        ious[i] = temporal_iou(clamp_span(span, durations_s[i]), clamp_span(gt_spans[i], durations_s[i]))
    return ious


def vcmr_hits_at_1(
    answers: Sequence[str | None],
    judged_video_ids: Sequence[str | None],
    pred_spans: Sequence[Span | None],
    gt_video_ids: Sequence[str],
    gt_spans: Sequence[Span],
    durations_s: Sequence[float],
    iou_threshold: float,
) -> np.ndarray:
    """Per-query VCMR hit at IoU ``m``: answer ``matched`` on the ground-truth video with IoU >= m.

    Args:
        answers, judged_video_ids, pred_spans, gt_video_ids, gt_spans, durations_s: as in
            :func:`moment_ious`.
        iou_threshold: ``m`` in [0, 1].

    Returns:
        bool array (N,).
    """
    ious = moment_ious(answers, judged_video_ids, pred_spans, gt_video_ids, gt_spans, durations_s)
    return _grounded(answers, judged_video_ids, pred_spans, gt_video_ids) & (ious >= iou_threshold)


def vcmr_recall_at_1(
    answers: Sequence[str | None],
    judged_video_ids: Sequence[str | None],
    pred_spans: Sequence[Span | None],
    gt_video_ids: Sequence[str],
    gt_spans: Sequence[Span],
    durations_s: Sequence[float],
    iou_threshold: float,
) -> float:
    """VCMR R@1 at IoU ``m``, a fraction in [0, 1]; arguments as in :func:`vcmr_hits_at_1`.

    Returns:
        The fraction of queries that are VCMR hits; NaN for no queries.
    """
    return _mean(
        vcmr_hits_at_1(answers, judged_video_ids, pred_spans, gt_video_ids, gt_spans, durations_s, iou_threshold)
    )


def mean_iou(
    answers: Sequence[str | None],
    judged_video_ids: Sequence[str | None],
    pred_spans: Sequence[Span | None],
    gt_video_ids: Sequence[str],
    gt_spans: Sequence[Span],
    durations_s: Sequence[float],
) -> float:
    """mIoU: the mean over all queries of :func:`moment_ious` (0 for a wrong or missing answer).

    Returns:
        A fraction in [0, 1]; NaN for no queries.
    """
    return _mean(moment_ious(answers, judged_video_ids, pred_spans, gt_video_ids, gt_spans, durations_s))


def judgements_correct(
    answers: Sequence[str], judged_video_ids: Sequence[str], gt_video_ids: Sequence[str]
) -> np.ndarray:
    """Per judgement: whether ``answer == "matched"`` agrees with "the judged video is the ground truth".

    Args:
        answers: per judgement, ``"matched"``, ``"not_matched"`` or ``"unparsable"``.
        judged_video_ids: per judgement, the video the policy judged.
        gt_video_ids: per judgement, the ground-truth video of its query.

    Returns:
        bool array (J,); an ``"unparsable"`` (or any other) answer is always wrong.
    """
    _check_aligned(answers=answers, judged_video_ids=judged_video_ids, gt_video_ids=gt_video_ids)
    return np.array(
        [
            answer in (MATCHED, "not_matched") and (answer == MATCHED) == (video == gt)
            for answer, video, gt in zip(answers, judged_video_ids, gt_video_ids)
        ],
        dtype=bool,
    )


def verification_accuracy(
    answers: Sequence[str], judged_video_ids: Sequence[str], gt_video_ids: Sequence[str]
) -> float:
    """VER: accuracy over every judgement made (all turns of all queries), a fraction in [0, 1].

    Args:
        answers, judged_video_ids, gt_video_ids: one entry per judgement, as in
            :func:`judgements_correct`.

    Returns:
        The fraction of correct judgements; NaN when no judgement was made.
    """
    return _mean(judgements_correct(answers, judged_video_ids, gt_video_ids))


def verification_balanced_accuracy(
    answers: Sequence[str], judged_video_ids: Sequence[str], gt_video_ids: Sequence[str]
) -> float:
    """The mean of VER over judgements of the ground truth and VER over judgements of a wrong video, in [0, 1]:
    a judge that rejects everything scores 0.5 however rare the right videos are. NaN when a class is missing."""
    correct = judgements_correct(answers, judged_video_ids, gt_video_ids)
    right = np.array([video == gt for video, gt in zip(judged_video_ids, gt_video_ids)], dtype=bool)
    if not right.any() or right.all():
        return math.nan
    return 0.5 * (float(correct[right].mean()) + float(correct[~right].mean()))


def mean_turns(turns_per_query: Sequence[int]) -> float:
    """Mean number of turns (judgements) per query; NaN for no queries.

    Args:
        turns_per_query: per query, its number of judgements.
    """
    return _mean(np.asarray(turns_per_query, dtype=np.float64))


def mean_total_per_query(values_per_query: Sequence[Sequence[float]]) -> float:
    """Mean over queries of a cost summed over each query's turns (tokens, latent steps, seconds).

    Args:
        values_per_query: per query, one value per judgement.

    Returns:
        ``mean_q sum_t values[q][t]``; NaN for no queries.
    """
    return _mean(np.array([_total(values) for values in values_per_query], dtype=np.float64))


def _total(values: Sequence[float]) -> float:
    """The exact sum (math.fsum), or +-inf where it lies beyond float range (fsum raises OverflowError there)."""
    try:
        return math.fsum(values)
    except OverflowError:
        return float(sum(float(value) for value in values))


def bootstrap_ci(
    per_query_values: Sequence[float] | np.ndarray, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean over queries.

    Args:
        per_query_values: (N,) one value per query, e.g. 0/1 hits from :func:`video_hits_at_k`.
        n_resamples: number of resamples of N queries with replacement.
        seed: seed of the resampling; the same inputs and seed give the same interval.
        alpha: 1 - confidence level; 0.05 gives a 95 % interval.

    Returns:
        ``(low, high)`` in the units of the values; ``(nan, nan)`` for no values.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    values = np.asarray(per_query_values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_resamples, values.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def paired_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                      n_resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of the per-query differences a - b with its percentile-bootstrap 95 % interval (the same resampled
    queries for both): ``(delta, low, high)`` in the units of the values."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values must align query by query, got shapes {a.shape} and {b.shape}")
    low, high = bootstrap_ci(a - b, n_resamples, seed)
    return (float(np.mean(a - b)) if a.size else math.nan), low, high


def _grounded(
    answers: Sequence[str | None],
    judged_video_ids: Sequence[str | None],
    pred_spans: Sequence[Span | None],
    gt_video_ids: Sequence[str],
) -> np.ndarray:
    """Per query: the final answer is ``matched``, on the ground-truth video, with a span."""
    rows = zip(answers, judged_video_ids, pred_spans, gt_video_ids)
    return np.array(
        [answer == MATCHED and video == gt and span is not None for answer, video, span, gt in rows], dtype=bool
    )


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def _check_aligned(**columns: Sequence[object]) -> None:
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-query sequences must have the same length, got {lengths}")
