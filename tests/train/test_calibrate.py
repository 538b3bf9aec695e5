from __future__ import annotations

import numpy as np
import pytest

from videosearch.train.calibrate import balanced_accuracy, best_threshold


def test_balanced_accuracy_weighs_both_classes_alike() -> None:
    probs = np.array([0.9, 0.2, 0.1, 0.1, 0.1, 0.1])
    labels = np.array([True, True, False, False, False, False])
    assert balanced_accuracy(probs, labels, 0.5) == pytest.approx(75.0)  # one of 2 positives, all 4 negatives
    assert balanced_accuracy(probs, labels, 0.15) == pytest.approx(100.0)


def test_the_threshold_separates_the_classes_and_prefers_one_near_half() -> None:
    probs = np.array([0.30, 0.35, 0.02, 0.05, 0.10])
    labels = np.array([True, True, False, False, False])
    threshold = best_threshold(probs, labels)
    assert 0.10 < threshold < 0.30 and balanced_accuracy(probs, labels, threshold) == 100.0
    assert best_threshold(np.array([0.8, 0.2]), np.array([True, False])) == pytest.approx(0.5)
