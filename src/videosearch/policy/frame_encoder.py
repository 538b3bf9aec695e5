"""The mini policy's own eyes: a small CNN over each 1-fps frame and its neighbours, trained to say who is where.

The retriever's frame features were trained only to be pooled into one video vector, so they say little about
which actor is where or what it is doing. This encoder is trained on the synthetic world's specs instead
(`videosearch.train.frame_encoder`): from frames t-1, t, t+1 it predicts the scene and, for each colour, whether
an actor of that colour is in view, its shape, position and size, and which event it is in (and its direction),
so motion and timing are in the features too. It is then frozen; the policy's `vision_projector` reads its
features. Saved as a folder: `frame_encoder.json` + `frame_encoder.safetensors`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from videosearch.config import build_config
from videosearch.errors import ConfigError

CONFIG_FILE = "frame_encoder.json"
WEIGHTS_FILE = "frame_encoder.safetensors"
#: what the attribute heads predict, per colour slot (the world's colours are unique within a video at any time)
SHAPE_CLASSES = 4
EVENT_CLASSES = 8  # none + the world's 7 event kinds
DIRECTION_CLASSES = 5  # none, left, right, up, down


@dataclass
class FrameEncoderConfig:
    """Sizes of the encoder and of its attribute heads (scene count, colour slots: the world's)."""

    frame_size: int = 64
    stem_channels: int = 32
    slot_channels: int = 4  # per colour slot, out of the stem
    slot_dim: int = 32  # feature width per colour slot
    scene_dim: int = 32
    context: int = 1  # frames on each side stacked with frame t (1: t-1, t, t+1)
    temporal_dim: int = 64  # width of the temporal event head, which reads each slot's whole track
    temporal_kernel: int = 5  # frames one of its convolutions sees (two of them: 9 frames in all)
    scenes: int = 8
    colours: int = 8

    def __post_init__(self) -> None:
        if self.frame_size % 8:
            raise ConfigError(f"frame_encoder.frame_size must be a multiple of 8 (got {self.frame_size})")
        if self.context < 0:
            raise ConfigError(f"frame_encoder.context must be >= 0 (got {self.context})")

    @property
    def feature_dim(self) -> int:
        return self.scene_dim + self.colours * self.slot_dim


def stack_neighbours(frames: torch.Tensor, context: int) -> torch.Tensor:
    """(B, T, 3, S, S) -> (B, T, 3 (2c + 1), S, S): each frame with its `context` neighbours on each side (the edge
    frames repeated), in time order."""
    t = frames.shape[1]
    index = torch.arange(t)
    shifted = [frames[:, (index + offset).clamp(0, t - 1)] for offset in range(-context, context + 1)]
    return torch.cat(shifted, dim=2)


class FrameEncoder(nn.Module):
    """Frames (B, T, 3, S, S) in [0, 1] -> per-frame features (B, T, F); `heads` predict the world's attributes.

    A stem gives each colour slot a few channels of its own (what is of that colour, and where, in the stacked
    frames); one small CNN, shared by the slots, turns each slot's maps into its vector; a pooled branch gives the
    scene. Feature = [scene, slot 1, ..., slot K], so "the orange circle" has a fixed place in it."""

    def __init__(self, config: FrameEncoderConfig) -> None:
        super().__init__()
        self.config = config
        k, c = config.colours, config.slot_channels
        inputs = 3 * (2 * config.context + 1) + 2  # + 2 coordinate channels
        self.stem = nn.Sequential(nn.Conv2d(inputs, config.stem_channels, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(config.stem_channels, k * c, 1))
        cells = (config.frame_size // 8) ** 2
        self.slot_encoder = nn.Sequential(  # (K B, c + 2, S, S) -> (K B, slot_dim); flattened: where stays in it
            nn.Conv2d(c + 2, 16, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.GELU(),
            nn.Flatten(), nn.Linear(32 * cells, config.slot_dim))
        self.scene_encoder = nn.Sequential(nn.Linear(2 * config.stem_channels, config.scene_dim))
        self.norm = nn.LayerNorm(config.feature_dim)
        self.heads = nn.ModuleDict({
            "scene": nn.Linear(config.scene_dim, config.scenes),
            # per slot, read from that slot's own vector (shared weights)
            "visible": nn.Linear(config.slot_dim, 1),
            "shape": nn.Linear(config.slot_dim, SHAPE_CLASSES),
            "box": nn.Linear(config.slot_dim, 3),  # x, y, radius, scaled to [0, 1]
            "event": nn.Linear(config.slot_dim, EVENT_CLASSES),
            "direction": nn.Linear(config.slot_dim, DIRECTION_CLASSES),
        })
        # events last seconds and "enters" differs from "moves" only by what came before: read the whole track
        pad = config.temporal_kernel // 2
        self.temporal = nn.Sequential(
            nn.Conv1d(config.slot_dim, config.temporal_dim, config.temporal_kernel, padding=pad), nn.GELU(),
            nn.Conv1d(config.temporal_dim, config.temporal_dim, config.temporal_kernel, padding=pad), nn.GELU(),
            nn.Conv1d(config.temporal_dim, EVENT_CLASSES + DIRECTION_CLASSES, 1))
        size = config.frame_size
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
        self.register_buffer("coords", torch.stack([ys, xs]), persistent=False)  # (2, S, S)

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, S, S) float in [0, 1] -> (B, T, F) features."""
        b, t = frames.shape[:2]
        return self.encode(stack_neighbours(frames, self.config.context).flatten(0, 1)).reshape(b, t, -1)

    def encode(self, stacked: torch.Tensor) -> torch.Tensor:
        """(N, 3 (2c + 1), S, S) frames stacked with their neighbours -> (N, F) features."""
        n, k, c = len(stacked), self.config.colours, self.config.slot_channels
        coords = self.coords.expand(n, -1, -1, -1)
        hidden = self.stem[1](self.stem[0](torch.cat([stacked, coords], dim=1)))  # (N, stem, S, S)
        maps = self.stem[2](hidden).unflatten(1, (k, c))  # (N, K, c, S, S)
        slots = torch.cat([maps, coords[:, None].expand(-1, k, -1, -1, -1)], dim=2).flatten(0, 1)
        slot_vectors = self.slot_encoder(slots).reshape(n, k * self.config.slot_dim)
        scene = self.scene_encoder(torch.cat([hidden.mean((2, 3)), hidden.amax((2, 3))], dim=1))
        return self.norm(torch.cat([scene, slot_vectors], dim=1))

    def predict(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Attribute logits (and the box regression) of features (..., F); per-slot outputs shaped (..., K, C)."""
        k, d = self.config.colours, self.config.slot_dim
        scene, slots = features[..., : self.config.scene_dim], features[..., self.config.scene_dim:]
        slots = slots.unflatten(-1, (k, d))
        out = {name: head(slots) for name, head in self.heads.items() if name != "scene"}
        out["visible"] = out["visible"][..., 0]
        out["scene"] = self.heads["scene"](scene)
        return out

    def track_events(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame (event, direction) logits (B, T, K, C) of one clip's features (B, T, F), from each colour
        slot's whole track (all frames valid: run one video at a time, or mask the padding's labels)."""
        b, t = features.shape[:2]
        k, d = self.config.colours, self.config.slot_dim
        slots = features[..., self.config.scene_dim:].reshape(b, t, k, d).permute(0, 2, 3, 1)  # (B, K, D, T)
        logits = self.temporal(slots.flatten(0, 1)).reshape(b, k, -1, t).permute(0, 3, 1, 2)  # (B, T, K, C)
        return logits[..., :EVENT_CLASSES], logits[..., EVENT_CLASSES:]

    def save_pretrained(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, out / WEIGHTS_FILE)
        config = asdict(self.config)
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=2))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> FrameEncoder:
        """A trained encoder, frozen and in eval mode."""
        folder = Path(path)
        if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
            raise ConfigError(f"{folder} is not a trained frame encoder (needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
                              "train one with `videosearch train frame-encoder`")
        try:
            values = json.loads((folder / CONFIG_FILE).read_text())
            if not isinstance(values, dict):
                raise ValueError("not a JSON object")
            config = build_config(FrameEncoderConfig, values, str(folder / CONFIG_FILE))
            encoder = cls(config)
            encoder.load_state_dict(load_file(folder / WEIGHTS_FILE))
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            raise ConfigError(f"{folder} holds a damaged frame encoder ({type(exc).__name__}: "
                              f"{(str(exc).splitlines() or [''])[0]}): train it again") from None
        return encoder.eval().requires_grad_(False)
