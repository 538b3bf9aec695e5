"""Linear probes: does what the policy reads of a frame say what the queries talk about?

Run:
    .venv/bin/python bench/probes.py --world runs/world --retriever runs/retriever --frame-encoder runs/frame_encoder

For the retriever's per-frame CNN features (what the mini policy read before it had eyes of its own) and for the
policy's frame encoder, linear probes are fitted on the frames of `--train-videos` train videos and scored on the
frames of the val videos (held out): the scene; the exact set of (shape, colour) actors in view; the first actor's
x position (R²) and size (small or large, when in view); the event the first actor is in (none or one of 7 kinds).
Progress goes to stderr; one JSON line of results goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from videosearch.corpus.world import load_video_specs
from videosearch.corpus.world_render import RADIUS_PX, actor_state
from videosearch.corpus.world_spec import COLOURS, EVENT_KINDS, SHAPES, VideoSpec
from videosearch.embed.mini import MiniEmbedder
from videosearch.policy.frame_encoder import FrameEncoder, FrameEncoderConfig
from videosearch.train.frame_encoder import load_split_frames


def probe_labels(world: Path, split: str, frame_times: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per frame: scene, the (shape, colour) set in view as 32 bits, first actor's x / size / visibility / event."""
    specs = [VideoSpec.from_dict(row) for row in load_video_specs(world, split).values()]
    rows: dict[str, list] = {"scene": [], "actors": [], "x": [], "large": [], "seen": [], "event": []}
    scenes = sorted({s.scene for s in specs})
    for spec, times in zip(specs, frame_times):
        for t in times:
            bits = np.zeros(len(SHAPES) * len(COLOURS), np.float32)
            for who, actor in enumerate(spec.actors):
                _, _, _, colour, visible = actor_state(spec, who, float(t))
                if visible:
                    bits[SHAPES.index(actor.shape) * len(COLOURS) + list(COLOURS).index(colour)] = 1
            x, _, radius, _, visible = actor_state(spec, 0, float(t))
            active = [e for e in spec.events if e.actor == 0 and e.start_s <= t <= e.end_s]
            rows["scene"].append(scenes.index(spec.scene) if spec.scene in scenes else 0)
            rows["actors"].append(bits)
            rows["x"].append(x)
            rows["large"].append(radius > (RADIUS_PX["small"] + RADIUS_PX["large"]) / 2)
            rows["seen"].append(visible)
            rows["event"].append(EVENT_KINDS.index(active[0].kind) + 1 if active else 0)
    return {k: np.array(v) for k, v in rows.items()}


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


def probe_scores(train_x: np.ndarray, train: dict, test_x: np.ndarray, test: dict) -> dict[str, float]:
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    scores = {}
    with torch.no_grad():
        for name, classes in (("scene", 8), ("event", len(EVENT_KINDS) + 1)):
            layer = fit_linear(a, train[name], classes)
            scores[f"{name}_acc"] = 100 * float((layer(torch.from_numpy(b).float()).argmax(-1).numpy()
                                                 == test[name]).mean())
        layer = fit_linear(a, train["actors"], -1)
        said = layer(torch.from_numpy(b).float()).numpy() > 0
        scores["actor_set_exact_acc"] = 100 * float((said == (test["actors"] > 0)).all(1).mean())
        seen_a, seen_b = train["seen"], test["seen"]
        x_mean, x_std = train["x"][seen_a].mean(), train["x"][seen_a].std()  # R² does not depend on the scale
        layer = fit_linear(a[seen_a], (train["x"][seen_a] - x_mean) / x_std, None)
        pred = layer(torch.from_numpy(b[seen_b]).float())[:, 0].numpy()
        truth = (test["x"][seen_b] - x_mean) / x_std
        scores["first_actor_x_r2"] = float(1 - ((pred - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum())
        layer = fit_linear(a[seen_a], train["large"][seen_a].astype(np.int64), 2)
        scores["first_actor_size_acc"] = 100 * float((layer(torch.from_numpy(b[seen_b]).float()).argmax(-1).numpy()
                                                      == test["large"][seen_b]).mean())
    return {k: round(v, 3) for k, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=Path, default=Path("runs/world"))
    parser.add_argument("--retriever", type=Path, default=Path("runs/retriever"))
    parser.add_argument("--frame-encoder", type=Path, default=Path("runs/frame_encoder"))
    parser.add_argument("--train-videos", type=int, default=150)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = FrameEncoderConfig()
    data = {split: load_split_frames(args.world, split, config) for split in ("train", "val")}
    times = {split: frames.times_s for split, frames in data.items()}
    n_train = int(sum(len(t) for t in times["train"][: args.train_videos]))
    labels = {"train": probe_labels(args.world, "train", times["train"][: args.train_videos]),
              "val": probe_labels(args.world, "val", times["val"])}
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
