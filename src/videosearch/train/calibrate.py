"""The verdict's threshold, chosen on held-out queries and saved with the checkpoint.

    report = calibrate_verdict(policy_dir, index_dir, annotations)   # rewrites <policy>/policy.json

The policy's verdict is P(matched) at the answer position, after its reasoning. Each val query is shown its
ground-truth video and its top-ranked wrong videos; the threshold that maximises balanced accuracy over those
judgements (mean of the accuracies on the two classes, so the many wrong videos do not decide it alone) is written
into the checkpoint's config, and the measurements into `<policy>/calibration.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from videosearch.agent.videos import VideoCache
from videosearch.atomic import write_text_atomic
from videosearch.corpus.annotations import read_moments
from videosearch.corpus.types import VideoFrames
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.policy.policy import CONFIG_FILE, Policy
from videosearch.progress import track
from videosearch.train.sft_data import rank_videos

REPORT_FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold and what it does on the calibration judgements."""

    threshold: float
    balanced_accuracy: float  # percent, at `threshold`
    balanced_accuracy_at_half: float  # percent, at 0.5
    positives: int
    negatives: int

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def balanced_accuracy(probs: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Mean of the true-positive and true-negative rates (percent) of `probs >= threshold` against `labels`."""
    said = probs >= threshold
    rates = [np.mean(said[labels]) if labels.any() else 1.0, np.mean(~said[~labels]) if (~labels).any() else 1.0]
    return float(50 * sum(rates))


def best_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """The threshold with the highest balanced accuracy, midway between neighbouring probabilities; ties go to
    the one nearest 0.5."""
    values = np.unique(np.concatenate([[0.0, 1.0], probs]))
    candidates = np.concatenate([(values[:-1] + values[1:]) / 2, [0.5]])
    scores = np.array([balanced_accuracy(probs, labels, t) for t in candidates])
    best = np.flatnonzero(scores >= scores.max() - 1e-9)
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


def match_probabilities(policy: Policy, queries: list[str], videos: list[VideoFrames],
                        batch_size: int = 32) -> np.ndarray:
    """P(matched) of each (query, video), in their order, judged in batches of prompts of like lengths: a row's
    verdict does not depend on the others in its batch, and a batch pads and generates only as long as its longest."""
    lengths = policy.sft_lengths(queries, videos, [""] * len(queries), ["sqr"] * len(queries))
    order = np.argsort(lengths, kind="stable")
    probs = np.full(len(queries), np.nan)
    for start in track(range(0, len(order), batch_size), "calibrating the verdict"):
        rows = order[start: start + batch_size]
        probs[rows] = policy.match_probability([queries[i] for i in rows], [videos[i] for i in rows])
    return probs


def calibrate_verdict(policy_dir: str | Path, index_dir: str | Path, annotations: str | Path,
                      wrong_per_query: int = 3, batch_size: int = 32) -> Calibration:
    """Measure P(matched) on each query's ground truth and its top `wrong_per_query` wrong videos, pick the
    threshold, and save it in the checkpoint (`policy.json`) with the report (`calibration.json`)."""
    folder = Path(policy_dir)
    engine = SearchEngine.load(index_dir)
    policy = Policy.load(folder, engine.embedder)
    indexed = set(engine.video_ids)
    moments = [m for m in read_moments(annotations).moments if m.video_id in indexed]
    if not moments:
        raise ConfigError(f"no query of {annotations} has its video in {index_dir}: index the same split")
    ranked = rank_videos(engine, moments, k=wrong_per_query + 1)
    pairs = [(m.query, m.video_id, True) for m in moments]
    pairs += [(m.query, v, False) for m in moments for v in ranked[m.qid][:wrong_per_query + 1] if v != m.video_id]
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    probs = match_probabilities(policy, [q for q, _, _ in pairs], [videos[v] for _, v, _ in pairs], batch_size)
    p = np.nan_to_num(probs, nan=0.0)  # a turn that never reached its verdict accepted nothing
    labels = np.array([matched for _, _, matched in pairs])
    threshold = best_threshold(p, labels)
    result = Calibration(threshold, balanced_accuracy(p, labels, threshold), balanced_accuracy(p, labels, 0.5),
                         int(labels.sum()), int((~labels).sum()))
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["verdict_threshold"] = round(threshold, 6)
    write_text_atomic(folder / CONFIG_FILE, json.dumps(config, indent=2))
    write_text_atomic(folder / REPORT_FILE, json.dumps({**result.to_dict(), "annotations": str(annotations)},
                                                       indent=2))
    return result
