"""The policy's vision stage: train the frame encoder on the synthetic world's specs, then freeze it.

    config = load_config(FrameEncoderTrainConfig, "configs/mini.yaml", "frame_encoder")
    train_frame_encoder(config)        # writes <out>/frame_encoder.{json,safetensors} and <out>/train_log.json

Every frame of the train split is decoded at 1 fps, exactly as the policy will see it, and labelled from its
video's spec at the frame's true time (`frame_labels`): the scene, and for each colour slot whether an actor of
that colour is in view, its shape, position and radius, and the event it is in with its direction. The val
split's frames measure the heads (accuracies in `train_log.json`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from videosearch.atomic import write_text_atomic
from videosearch.corpus.video import read_frames
from videosearch.corpus.world import load_video_specs
from videosearch.corpus.world_render import RADIUS_PX, actor_state
from videosearch.corpus.world_spec import COLOURS, DIRECTIONS, EVENT_KINDS, FRAME_SIZE, SCENES, SHAPES, VideoSpec
from videosearch.errors import ConfigError
from videosearch.folders import check_replaceable, publish_folder
from videosearch.policy.frame_encoder import FrameEncoder, FrameEncoderConfig
from videosearch.progress import progress, track

logger = logging.getLogger(__name__)
LOG_FILE = "train_log.json"  # written last: also the mark of a trained encoder's folder
IGNORE = -100
_COLOUR = {c: i for i, c in enumerate(COLOURS)}


@dataclass
class FrameEncoderTrainConfig:
    """The vision stage: `world` from `videosearch world generate`, the encoder written to `out`."""

    world: str | None = None
    out: str | None = None
    encoder: FrameEncoderConfig = field(default_factory=FrameEncoderConfig)
    epochs: int = 4
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    seed: int = 0
    track_epochs: int = 10  # the temporal event head, on the frozen per-frame features (seconds per epoch)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.track_epochs < 1:
            raise ConfigError("frame_encoder: epochs, track_epochs and batch_size must be >= 1 and lr > 0")


def frame_labels(spec: VideoSpec, times_s: np.ndarray) -> dict[str, np.ndarray]:
    """What the heads must say of each frame at `times_s` (T,): arrays shaped (T,) or (T, K) for K colour slots,
    `IGNORE` where a label does not apply (no actor of that colour in the video at that time)."""
    t, k = len(times_s), len(COLOURS)
    labels = {"scene": np.full(t, list(SCENES).index(spec.scene)), "visible": np.zeros((t, k), np.float32),
              "shape": np.full((t, k), IGNORE), "box": np.zeros((t, k, 3), np.float32),
              "event": np.full((t, k), IGNORE), "direction": np.full((t, k), IGNORE)}
    for row, time_s in enumerate(times_s):
        for who, actor in enumerate(spec.actors):
            x, y, radius, colour, visible = actor_state(spec, who, float(time_s))
            slot = _COLOUR[colour]
            if labels["event"][row, slot] != IGNORE:
                continue  # two actors of one colour (rare): the first one is labelled
            active = [e for e in spec.events if e.actor == who and e.start_s <= time_s <= e.end_s]
            kind, param = (active[0].kind, active[0].param) if active else ("", "")
            labels["event"][row, slot] = EVENT_KINDS.index(kind) + 1 if kind else 0
            labels["direction"][row, slot] = DIRECTIONS.index(param) + 1 if param in DIRECTIONS else 0
            if visible:
                labels["visible"][row, slot] = 1.0
                labels["shape"][row, slot] = SHAPES.index(actor.shape)
                labels["box"][row, slot] = (x / FRAME_SIZE, y / FRAME_SIZE, radius / RADIUS_PX["large"])
    return labels


@dataclass
class _Frames:
    """Every frame of a split stacked with its neighbours' rows, and its labels."""

    pixels: torch.Tensor  # uint8 (N, 3, S, S)
    neighbours: torch.Tensor  # long (N, 2c + 1): rows of the frames stacked for each frame, in time order
    labels: dict[str, torch.Tensor]
    times_s: list[np.ndarray]  # per video, in the split's order: the true times of its frames

    def __len__(self) -> int:
        return len(self.pixels)

    def batch(self, rows: torch.Tensor) -> torch.Tensor:
        """float (B, 3 (2c + 1), S, S) in [0, 1]."""
        return self.pixels[self.neighbours[rows]].flatten(1, 2).float() / 255.0


def _decode(args: tuple[str, int]) -> tuple[np.ndarray, np.ndarray]:
    path, size = args
    video = read_frames(path, fps=1.0, size=(size, size))
    return video.frames, video.timestamps_s


def load_split_frames(world: Path, split: str, config: FrameEncoderConfig, workers: int = 2) -> _Frames:
    """Decode a split's videos at 1 fps (as the policy sees them) and label every frame from its spec."""
    specs = {vid: VideoSpec.from_dict(row) for vid, row in load_video_specs(world, split).items()}
    paths = [(str(world / "videos" / split / f"{vid}.mp4"), config.frame_size) for vid in specs]
    pixels, neighbours, labels, times_s = [], [], [], []
    offset = 0
    with ProcessPoolExecutor(workers) as pool:
        decoded = pool.map(_decode, paths, chunksize=8)
        for spec, (frames, times) in zip(specs.values(), track(decoded, f"decoding {split} frames", len(paths))):
            t = len(frames)
            index = np.arange(t)
            neighbours.append(np.stack([offset + np.clip(index + d, 0, t - 1)
                                        for d in range(-config.context, config.context + 1)], axis=1))
            pixels.append(frames.transpose(0, 3, 1, 2))
            labels.append(frame_labels(spec, times))
            times_s.append(times)
            offset += t
    return _Frames(torch.from_numpy(np.concatenate(pixels)), torch.from_numpy(np.concatenate(neighbours)),
                   {k: torch.from_numpy(np.concatenate([x[k] for x in labels])) for k in labels[0]}, times_s)


def attribute_losses(encoder: FrameEncoder, features: torch.Tensor,
                     labels: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One loss per head; slot heads count only where their label applies."""
    out = encoder.predict(features)
    ce = nn.functional.cross_entropy
    seen = labels["visible"] > 0
    box_error = ((out["box"] - labels["box"]) ** 2).sum(-1)[seen]
    return {"scene": ce(out["scene"], labels["scene"]),
            "visible": nn.functional.binary_cross_entropy_with_logits(out["visible"], labels["visible"]),
            "shape": ce(out["shape"].flatten(0, 1), labels["shape"].flatten(), ignore_index=IGNORE),
            "box": 10.0 * box_error.mean() if len(box_error) else features.new_zeros(()),
            "event": ce(out["event"].flatten(0, 1), labels["event"].flatten(), ignore_index=IGNORE),
            "direction": ce(out["direction"].flatten(0, 1), labels["direction"].flatten(), ignore_index=IGNORE)}


@torch.no_grad()
def video_features(encoder: FrameEncoder, frames: _Frames, batch_size: int = 512) -> list[torch.Tensor]:
    """The frozen per-frame features of every video of the split, (T, F) each, in the split's order."""
    rows = torch.arange(len(frames))
    features = torch.cat([encoder.encode(frames.batch(rows[s: s + batch_size]))
                          for s in range(0, len(frames), batch_size)])
    return list(features.split([len(t) for t in frames.times_s]))


def _video_labels(frames: _Frames) -> list[tuple[torch.Tensor, torch.Tensor]]:
    lengths = [len(t) for t in frames.times_s]
    return list(zip(frames.labels["event"].split(lengths), frames.labels["direction"].split(lengths)))


def track_accuracies(encoder: FrameEncoder, features: list[torch.Tensor], frames: _Frames) -> dict[str, float]:
    """Accuracy (percent) of the temporal head's event and direction on labelled frames."""
    hits: dict[str, list[torch.Tensor]] = {"track_event_acc": [], "track_direction_acc": []}
    with torch.no_grad():
        for video, (event, direction) in zip(features, _video_labels(frames)):
            event_logits, direction_logits = (x[0] for x in encoder.track_events(video[None]))
            known = event != IGNORE
            hits["track_event_acc"].append((event_logits.argmax(-1) == event)[known])
            hits["track_direction_acc"].append((direction_logits.argmax(-1) == direction)[known])
    return {k: round(100 * float(torch.cat(v).float().mean()), 2) for k, v in hits.items()}


def train_track_head(encoder: FrameEncoder, train: _Frames, val: _Frames, epochs: int, lr: float,
                     seed: int) -> list[dict]:
    """Fit the temporal event head on the frozen per-frame features, one video per step; val accuracy per epoch."""
    encoder.eval()
    train_features, val_features = video_features(encoder, train), video_features(encoder, val)
    labels = _video_labels(train)
    optimizer = torch.optim.AdamW(encoder.temporal.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    ce = nn.functional.cross_entropy
    history = []
    for epoch in track(range(epochs), "temporal event head"):
        for i in torch.randperm(len(train_features), generator=generator).tolist():
            event_logits, direction_logits = (x[0] for x in encoder.track_events(train_features[i][None]))
            event, direction = labels[i]
            loss = (ce(event_logits.flatten(0, 1), event.flatten(), ignore_index=IGNORE)
                    + ce(direction_logits.flatten(0, 1), direction.flatten(), ignore_index=IGNORE))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            history.append({"track_epoch": epoch + 1, **track_accuracies(encoder, val_features, val)})
            logger.info("temporal event head epoch %d: %s", epoch + 1, history[-1])
    return history


@torch.no_grad()
def head_accuracies(encoder: FrameEncoder, frames: _Frames, batch_size: int = 512) -> dict[str, float]:
    """Per-head accuracy (percent) on labelled frames, and the position error in pixels."""
    hits: dict[str, list[torch.Tensor]] = {k: [] for k in ("scene", "visible", "shape", "event", "direction")}
    position_px = []
    for start in range(0, len(frames), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(frames)))
        out = encoder.predict(encoder.encode(frames.batch(rows)))
        labels = {k: v[rows] for k, v in frames.labels.items()}
        hits["scene"].append(out["scene"].argmax(-1) == labels["scene"])
        hits["visible"].append(((out["visible"] > 0) == (labels["visible"] > 0)).flatten())
        seen = labels["visible"] > 0
        for name in ("shape", "event", "direction"):
            known = labels[name] != IGNORE
            hits[name].append((out[name].argmax(-1) == labels[name])[seen if name == "shape" else known])
        position_px.append((out["box"][..., :2] - labels["box"][..., :2])[seen].norm(dim=-1) * FRAME_SIZE)
    result = {f"{k}_acc": round(100 * float(torch.cat(v).float().mean()), 2) for k, v in hits.items()}
    result["position_error_px"] = round(float(torch.cat(position_px).mean()), 3)
    return result


def train_frame_encoder(config: FrameEncoderTrainConfig) -> Path:
    """Train on the world's train split, measure on val, write the frozen encoder to `out`; returns `out`."""
    if not config.world or not config.out:
        raise ConfigError("the frame encoder needs `world` (videosearch world generate) and `out`")
    world, out = Path(config.world), Path(config.out)
    if not (world / "world.json").is_file():
        raise ConfigError(f"{world} is not a complete synthetic world: run `videosearch world generate --out {world}`")
    check_replaceable(out, LOG_FILE, "frame encoder")
    torch.manual_seed(config.seed)
    train, val = load_split_frames(world, "train", config.encoder), load_split_frames(world, "val", config.encoder)
    encoder = FrameEncoder(config.encoder).train()
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.epochs * steps_per_epoch,
                                                    pct_start=0.1)
    generator = torch.Generator().manual_seed(config.seed)
    began, history = time.perf_counter(), []
    with progress() as bar:
        task = bar.add_task("frame encoder", total=config.epochs * steps_per_epoch)
        for epoch in range(config.epochs):
            order = torch.randperm(len(train), generator=generator)
            total = 0.0
            for start in range(0, len(train), config.batch_size):
                rows = order[start: start + config.batch_size]
                losses = attribute_losses(encoder, encoder.encode(train.batch(rows)),
                                          {k: v[rows] for k, v in train.labels.items()})
                loss = sum(losses.values())
                optimizer.zero_grad()
                loss.backward()  # type: ignore[union-attr]
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(rows)
                bar.update(task, advance=1, description=f"frame encoder epoch {epoch + 1} loss {loss.item():.3f}")
            encoder.eval()
            history.append({"epoch": epoch + 1, "loss": round(total / len(train), 4), **head_accuracies(encoder, val)})
            encoder.train()
            logger.info("frame encoder epoch %d: %s", epoch + 1, history[-1])
    encoder.requires_grad_(False)
    encoder.temporal.requires_grad_(True)
    track_history = train_track_head(encoder, train, val, config.track_epochs, config.lr, config.seed)
    log = {"train_frames": len(train), "val_frames": len(val), "seconds": round(time.perf_counter() - began, 1),
           "history": history, "track_history": track_history}

    def write(folder: Path) -> None:
        encoder.save_pretrained(folder)
        write_text_atomic(folder / LOG_FILE, json.dumps(log, indent=2))

    publish_folder(out, write)
    return out
