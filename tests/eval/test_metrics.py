"""Golden values for the metric functions, each computed by hand in the comments."""

import math

import numpy as np
import pytest

from videosearch.eval.metrics import (
    bootstrap_ci,
    clamp_span,
    judgements_correct,
    mean_iou,
    mean_total_per_query,
    mean_turns,
    moment_ious,
    temporal_iou,
    vcmr_hits_at_1,
    vcmr_recall_at_1,
    verification_accuracy,
    video_hits_at_k,
    video_recall_at_k,
)


@pytest.mark.parametrize(
    ("span", "duration_s", "expected"),
    [
        ((3.0, 7.0), 10.0, (3.0, 7.0)),
        ((7.0, 3.0), 10.0, (3.0, 7.0)),  # reversed: swapped
        ((-2.0, 12.0), 8.0, (0.0, 8.0)),  # both ends clamped
        ((12.0, 15.0), 10.0, (10.0, 10.0)),  # past the end: an empty span at the end
        ((-5.0, -1.0), 10.0, (0.0, 0.0)),
        ((50.0, -1.0), math.nan, (0.0, 50.0)),  # unknown duration: no upper clamp
    ],
)
def test_clamp_span(span, duration_s, expected):
    assert clamp_span(span, duration_s) == expected


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ((0.0, 10.0), (5.0, 15.0), 5.0 / 15.0),  # overlap 5, union 15
        ((15.0, 5.0), (0.0, 10.0), 5.0 / 15.0),  # reversed prediction gives the same
        ((2.0, 4.0), (0.0, 10.0), 0.2),  # contained: 2 / 10
        ((3.0, 3.0), (0.0, 10.0), 0.0),  # a point inside: no overlap length
        ((0.0, 5.0), (5.0, 10.0), 0.0),  # touching
        ((0.0, 1.0), (2.0, 3.0), 0.0),  # disjoint
        ((1.0, 9.0), (1.0, 9.0), 1.0),
        ((4.0, 4.0), (4.0, 4.0), 0.0),  # empty union
    ],
)
def test_temporal_iou(pred, gt, expected):
    assert temporal_iou(pred, gt) == pytest.approx(expected)
    assert temporal_iou(gt, pred) == pytest.approx(expected)


def test_temporal_iou_after_clamping():
    # [-2, 12] in an 8 s video is [0, 8]; against [0, 4]: overlap 4, union 8.
    assert temporal_iou(clamp_span((-2.0, 12.0), 8.0), (0.0, 4.0)) == 0.5


def test_video_recall_with_ground_truth_absent_and_missing_rankings():
    rankings = [["a", "b", "c"], ["c", "d"], None, ["x", "y"]]
    gt = ["b", "a", "a", "x"]  # query 2's truth is absent, query 3 has no prediction
    np.testing.assert_array_equal(video_hits_at_k(rankings, gt, 1), [False, False, False, True])
    np.testing.assert_array_equal(video_hits_at_k(rankings, gt, 2), [True, False, False, True])
    assert video_recall_at_k(rankings, gt, 1) == 0.25
    assert video_recall_at_k(rankings, gt, 100) == 0.5  # a ranking shorter than k is used as it is


def test_video_recall_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k must be"):
        video_hits_at_k([["a"]], ["a"], 0)
    with pytest.raises(ValueError, match="same length"):
        video_hits_at_k([["a"]], ["a", "b"], 1)


def test_video_recall_of_no_queries_is_nan():
    assert math.isnan(video_recall_at_k([], [], 1))


# Five queries, all with ground truth video "g" and span [0, 10] in a 20 s video:
#   0: matched on g, span [5, 15] -> IoU 5/15       1: matched on g, span [12, 0] -> [0, 12], IoU 10/12
#   2: not_matched on g, perfect span -> 0           3: matched on "w" (wrong video), perfect span -> 0
#   4: no prediction -> 0
MOMENT_CASES = (
    ["matched", "matched", "not_matched", "matched", None],
    ["g", "g", "g", "w", None],
    [(5.0, 15.0), (12.0, 0.0), (0.0, 10.0), (0.0, 10.0), None],
    ["g"] * 5,
    [(0.0, 10.0)] * 5,
    [20.0] * 5,
)


def test_moment_ious_and_mean_iou():
    np.testing.assert_allclose(moment_ious(*MOMENT_CASES), [1 / 3, 10 / 12, 0.0, 0.0, 0.0])
    assert mean_iou(*MOMENT_CASES) == pytest.approx((1 / 3 + 10 / 12) / 5)


@pytest.mark.parametrize(
    ("iou_threshold", "hits"),
    [
        (0.0, [True, True, False, False, False]),  # even m = 0 needs matched on the right video
        (0.3, [True, True, False, False, False]),
        (0.5, [False, True, False, False, False]),
        (10 / 12, [False, True, False, False, False]),  # IoU equal to m counts
        (0.9, [False, False, False, False, False]),
    ],
)
def test_vcmr_hits_at_1(iou_threshold, hits):
    np.testing.assert_array_equal(vcmr_hits_at_1(*MOMENT_CASES, iou_threshold=iou_threshold), hits)
    assert vcmr_recall_at_1(*MOMENT_CASES, iou_threshold=iou_threshold) == pytest.approx(sum(hits) / 5)


def test_vcmr_matched_without_span_is_a_miss():
    args = (["matched"], ["g"], [None], ["g"], [(0.0, 10.0)], [20.0])
    assert not vcmr_hits_at_1(*args, iou_threshold=0.0)[0]
    assert moment_ious(*args)[0] == 0.0


def test_vcmr_clamps_with_the_video_duration():
    # Prediction [-3, 4] -> [0, 4]; truth [2, 9] in a 6 s video -> [2, 6]: overlap 2, union 6.
    args = (["matched"], ["g"], [(-3.0, 4.0)], ["g"], [(2.0, 9.0)], [6.0])
    assert moment_ious(*args)[0] == pytest.approx(1 / 3)


def test_verification_accuracy_counts_unparsable_as_wrong():
    answers = ["matched", "not_matched", "unparsable", "matched", "not_matched", "unparsable"]
    judged = ["g", "w", "g", "w", "g", "w"]
    gt = ["g"] * 6
    # right, right, unparsable, false match, false rejection, unparsable
    np.testing.assert_array_equal(judgements_correct(answers, judged, gt), [True, True, False, False, False, False])
    assert verification_accuracy(answers, judged, gt) == pytest.approx(2 / 6)
    assert math.isnan(verification_accuracy([], [], []))


def test_mean_turns_and_costs():
    assert mean_turns([1, 2, 3, 2]) == 2.0
    assert mean_total_per_query([[10, 20], [5], [0, 0, 3]]) == pytest.approx((30 + 5 + 3) / 3)
    assert mean_total_per_query([[0.25, 0.5], [1.25]]) == pytest.approx(1.0)
    assert math.isnan(mean_turns([]))
    assert math.isnan(mean_total_per_query([]))


def test_costs_beyond_float_range_are_infinite_not_an_overflow_error():
    # Each finite (a predictions file may hold them); math.fsum raised OverflowError on their sum.
    assert mean_total_per_query([[1e308, 1e308], [1.0]]) == math.inf


def test_bootstrap_ci_of_constant_values_is_a_point():
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    values = np.array([1.0] * 200 + [0.0] * 200)
    low, high = bootstrap_ci(values, n_resamples=2000, seed=3)
    assert (low, high) == bootstrap_ci(values, n_resamples=2000, seed=3)
    # The normal approximation: 0.5 +- 1.96 * sqrt(0.25 / 400) = 0.5 +- 0.049.
    assert 0.44 < low < 0.47
    assert 0.53 < high < 0.56
    wider_low, wider_high = bootstrap_ci(values, n_resamples=2000, seed=3, alpha=0.01)
    assert wider_low < low and wider_high > high


def test_bootstrap_ci_edge_cases():
    assert all(math.isnan(bound) for bound in bootstrap_ci([]))
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci([1.0], alpha=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1.0], n_resamples=0)
