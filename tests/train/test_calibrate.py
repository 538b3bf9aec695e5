from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from videosearch.agent.videos import VideoCache
from videosearch.corpus.annotations import read_moments
from videosearch.engine import SearchEngine
from videosearch.policy.policy import Policy, PolicyConfig
from videosearch.train.calibrate import balanced_accuracy, best_threshold, match_probabilities


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


def test_judgements_in_batches_of_like_lengths_come_back_in_the_pairs_order(small_world: Path,
                                                                            engine: SearchEngine) -> None:
    torch.manual_seed(0)
    policy = Policy.create(PolicyConfig(preset="tiny-mini", max_new_tokens=6, n_latents=2), engine.embedder).eval()
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    moments = read_moments(small_world / "test.jsonl").moments[:3]
    pairs = [(m.query, v) for m in moments for v in engine.video_ids[:3]]  # prompts of unlike lengths
    queries, clips = [q for q, _ in pairs], [videos[v] for _, v in pairs]
    alone = [policy.match_probability([q], [c])[0] for q, c in zip(queries, clips)]
    batched = match_probabilities(policy, queries, clips, batch_size=4)
    lengths = policy.sft_lengths(queries, clips, [""] * len(pairs), ["sqr"] * len(pairs))
    assert len(set(lengths)) > 1 and lengths != sorted(lengths), "the pairs must need reordering"
    assert np.ptp(alone) > 1e-3, "the judgements must differ for their order to show"
    np.testing.assert_allclose(batched, alone, atol=1e-4)
