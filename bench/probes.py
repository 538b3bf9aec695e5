"""Linear probes: does what the policy reads of a frame say what the queries talk about?

Run:
    .venv/bin/python bench/probes.py --world runs/world --retriever runs/retriever --frame-encoder runs/frame_encoder

For the retriever's per-frame CNN features (what the mini policy read before it had eyes of its own) and for the
policy's frame encoder, linear probes are fitted on the frames of `--train-videos` train videos (default all: a
probe per colour needs many frames) and scored on the frames of the val videos (held out), against the world's
specs at each frame's true time: the scene; the exact set of (shape, colour) actors in view; and, for an actor of a
given colour (what a query names: "the orange circle"), one probe per colour over the frames where it is in view:
its shape, its size (small or large), its x position (R², pooled over colours) and the event it is in (none or one
of 7 kinds; frames where it exists).
Progress goes to stderr; one JSON line of results goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from videosearch.corpus.world_render import RADIUS_PX
from videosearch.corpus.world_spec import COLOURS, EVENT_KINDS, SCENES, SHAPES
from videosearch.embed.mini import MiniEmbedder
from videosearch.policy.frame_encoder import FrameEncoder, FrameEncoderConfig
from videosearch.train.frame_encoder import IGNORE, load_split_frames

LARGE = (RADIUS_PX["small"] + RADIUS_PX["large"]) / 2 / RADIUS_PX["large"]  # radius label scaled like the box


def fit_linear(x: np.ndarray, y: np.ndarray, classes: int | None, steps: int = 400) -> torch.nn.Linear:
    """Softmax regression (classes), independent logistic outputs (classes = -1, y multi-hot) or least squares."""
    xt = torch.from_numpy(x).float()
    out = 1 if classes is None else (y.shape[1] if classes == -1 else classes)
    layer = torch.nn.Linear(x.shape[1], out)
    target = torch.from_numpy(y)
    with torch.enable_grad():
        _fit(layer, xt, target, classes, steps)
    return layer


def _fit(layer: torch.nn.Linear, xt: torch.Tensor, target: torch.Tensor, classes: int | None, steps: int) -> None:
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        logits = layer(xt)
        if classes is None:
            loss = torch.nn.functional.mse_loss(logits[:, 0], target.float())
        elif classes == -1:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target.float())
        else:
            loss = torch.nn.functional.cross_entropy(logits, target.long())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _accuracy(layer: torch.nn.Linear, x: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    with torch.no_grad():
        said = layer(torch.from_numpy(x).float()).argmax(-1).numpy()
    return int((said == y).sum()), len(y)


def probe_scores(train_x: np.ndarray, train: dict[str, np.ndarray], test_x: np.ndarray,
                 test: dict[str, np.ndarray]) -> dict[str, float]:
    """Probe accuracies (percent) and the pooled R² of x; `train` / `test` are `frame_labels` arrays."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    scores = {"scene_acc": 100 * np.divide(*_accuracy(fit_linear(a, train["scene"], len(SCENES)), b, test["scene"]))}

    def actor_bits(labels: dict[str, np.ndarray]) -> np.ndarray:
        bits = np.zeros((len(labels["scene"]), len(SHAPES), len(COLOURS)), np.float32)
        rows, slots = np.nonzero(labels["visible"] > 0)
        bits[rows, labels["shape"][rows, slots], slots] = 1
        return bits.reshape(len(bits), -1)

    layer = fit_linear(a, actor_bits(train), -1)
    with torch.no_grad():
        said = layer(torch.from_numpy(b).float()).numpy() > 0
    scores["actor_set_exact_acc"] = 100 * float((said == (actor_bits(test) > 0)).all(1).mean())
    counts = {name: [0, 0] for name in ("shape", "size", "event")}
    residual, total = 0.0, 0.0
    for slot in range(len(COLOURS)):
        seen_a, seen_b = train["visible"][:, slot] > 0, test["visible"][:, slot] > 0
        if seen_a.sum() < 20 or not seen_b.any():
            continue
        for name, target_a, target_b, classes in (
                ("shape", train["shape"][seen_a, slot], test["shape"][seen_b, slot], len(SHAPES)),
                ("size", (train["box"][seen_a, slot, 2] > LARGE).astype(np.int64),
                 (test["box"][seen_b, slot, 2] > LARGE).astype(np.int64), 2)):
            hits, n = _accuracy(fit_linear(a[seen_a], target_a, classes), b[seen_b], target_b)
            counts[name][0] += hits
            counts[name][1] += n
        known_a, known_b = train["event"][:, slot] != IGNORE, test["event"][:, slot] != IGNORE
        hits, n = _accuracy(fit_linear(a[known_a], train["event"][known_a, slot], len(EVENT_KINDS) + 1), b[known_b],
                            test["event"][known_b, slot])
        counts["event"][0] += hits
        counts["event"][1] += n
        x_a, x_b = train["box"][seen_a, slot, 0], test["box"][seen_b, slot, 0]
        x_mean, x_std = x_a.mean(), x_a.std() + 1e-6
        layer = fit_linear(a[seen_a], (x_a - x_mean) / x_std, None)
        with torch.no_grad():
            pred = layer(torch.from_numpy(b[seen_b]).float())[:, 0].numpy() * x_std + x_mean
        residual += float(((pred - x_b) ** 2).sum())
        total += float(((x_b - x_b.mean()) ** 2).sum())
    for name, (hits, n) in counts.items():
        scores[f"colour_{name}_acc"] = 100 * hits / max(n, 1)
    scores["colour_x_r2"] = 1 - residual / max(total, 1e-9)
    return {k: round(float(v), 3) for k, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=Path, default=Path("runs/world"))
    parser.add_argument("--retriever", type=Path, default=Path("runs/retriever"))
    parser.add_argument("--frame-encoder", type=Path, default=Path("runs/frame_encoder"))
    parser.add_argument("--train-videos", type=int, default=1200, help="probes per colour need many frames")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = FrameEncoderConfig()
    data = {split: load_split_frames(args.world, split, config) for split in ("train", "val")}
    n_train = int(sum(len(t) for t in data["train"].times_s[: args.train_videos]))
    labels = {"train": {k: v[:n_train].numpy() for k, v in data["train"].labels.items()},
              "val": {k: v.numpy() for k, v in data["val"].labels.items()}}
    embedder = MiniEmbedder.from_pretrained(args.retriever)
    encoder = FrameEncoder.from_pretrained(args.frame_encoder)
    results = {"train_frames": n_train, "val_frames": len(data["val"])}
    for name, features in (("retriever_frame_features", lambda px: _retriever_features(embedder, px)),
                           ("policy_frame_encoder", lambda px: encoder.encode(px))):
        feats = {}
        for split, rows in (("train", torch.arange(n_train)), ("val", torch.arange(len(data["val"])))):
            chunks = []
            with torch.no_grad():
                for start in range(0, len(rows), 512):
                    chunks.append(features(data[split].batch(rows[start: start + 512])).numpy())
            feats[split] = np.concatenate(chunks)
        results[name] = probe_scores(feats["train"], labels["train"], feats["val"], labels["val"])
        print(f"{name}: {results[name]}", file=sys.stderr)
    print(json.dumps(results))


def _retriever_features(embedder: MiniEmbedder, stacked: torch.Tensor) -> torch.Tensor:
    """The retriever tower's per-frame features of the middle frame of each stack, at its own frame size."""
    middle = stacked[:, 3:6] if stacked.shape[1] >= 9 else stacked[:, :3]
    size = embedder.frame_size
    frames = torch.nn.functional.interpolate(middle, size=(size, size), mode="area")
    return embedder.video.frame_features(frames[:, None])[:, 0]


if __name__ == "__main__":
    main()
