"""The `mini` embedder: frozen all-MiniLM-L6-v2 for text, a small trained video tower for frames.

Saved as a folder: `config.json` + `video_tower.safetensors`; `MiniEmbedder.from_pretrained(dir)`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from videosearch.corpus.types import VideoFrames
from videosearch.embed.base import Embedder, VideoEmbedding, masked_mean_embedding, segment_spans_s
from videosearch.embed.text_tower import TextTower
from videosearch.embed.video_tower import VideoTower, VideoTowerConfig
from videosearch.errors import ConfigError

WEIGHTS = "video_tower.safetensors"


def frames_to_tensor(videos: list[VideoFrames], frame_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a batch of decoded videos: frames (B, T, 3, S, S) in [0, 1], timestamps (B, T), mask (B, T)."""
    t_max = max(len(v) for v in videos)
    frames = torch.zeros(len(videos), t_max, 3, frame_size, frame_size)
    times = torch.zeros(len(videos), t_max)
    mask = torch.zeros(len(videos), t_max, dtype=torch.bool)
    for i, video in enumerate(videos):
        x = torch.from_numpy(video.frames).permute(0, 3, 1, 2).float() / 255.0  # (T, 3, H, W)
        if x.shape[-2:] != (frame_size, frame_size):
            x = torch.nn.functional.interpolate(x, size=(frame_size, frame_size), mode="area")
        frames[i, : len(video)] = x
        times[i, : len(video)] = torch.from_numpy(video.timestamps_s)
        mask[i, : len(video)] = True
    return frames, times, mask


class MiniEmbedder(Embedder):
    """Text: MiniLM (frozen). Video: `VideoTower` trained contrastively into MiniLM's space."""

    fps = 1.0

    def __init__(self, video_config: VideoTowerConfig | None = None, text_model_path: str | None = None) -> None:
        self.text = TextTower(text_model_path)
        self.text_model_path = text_model_path
        self.video_config = video_config or VideoTowerConfig(out_dim=self.text.dim)
        if self.video_config.out_dim != self.text.dim:
            raise ConfigError(f"video_tower.out_dim ({self.video_config.out_dim}) must equal the text width "
                              f"({self.text.dim})")
        self.video = VideoTower(self.video_config).eval()
        self.dim = self.text.dim
        self.max_frames = self.video_config.max_frames
        self.frame_size = self.video_config.frame_size

    @property
    def model_id(self) -> str:  # type: ignore[override]
        digest = hashlib.sha1()
        for name, tensor in sorted(self.video.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
        return f"mini-{self.dim}d-{digest.hexdigest()[:12]}"

    @property
    def latent_dim(self) -> int:
        return self.text.input_dim

    @property
    def latent_norm(self) -> float:
        return float(self.text.encoder.get_input_embeddings().weight.norm(dim=-1).mean())

    @torch.no_grad()
    def embed_text(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = [self.text(texts[i: i + batch_size]) for i in range(0, len(texts), batch_size)]
        return torch.cat(out).cpu().numpy().astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    def embed_text_with_latents(self, texts: list[str], latents: torch.Tensor) -> torch.Tensor:
        return self.text.forward_with_latents(texts, latents)

    @torch.no_grad()
    def mean_token_embedding(self, texts: list[str]) -> torch.Tensor:
        batch = self.text.tokenizer(texts, padding=True, return_tensors="pt")
        return masked_mean_embedding(self.text.encoder.get_input_embeddings(), batch["input_ids"],
                                     batch["attention_mask"])

    @torch.no_grad()
    def embed_video(self, videos: list[VideoFrames]) -> list[VideoEmbedding]:
        if not videos:
            return []
        device = next(self.video.parameters()).device
        frames, times, mask = (t.to(device) for t in frames_to_tensor(videos, self.video_config.frame_size))
        frame_vectors, video_vectors = (t.cpu() for t in self.video(frames, times, mask))
        results = []
        for i, video in enumerate(videos):
            segments, ranges = self.video.segments(frame_vectors[i], len(video))
            spans = segment_spans_s(video, ranges, self.fps)
            results.append(VideoEmbedding(video_vectors[i].numpy().astype(np.float32),
                                          segments.numpy().astype(np.float32),
                                          np.asarray(spans, np.float32), video.duration_s))
        return results

    def save_pretrained(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.video.state_dict().items()}, out / WEIGHTS)
        config = {"kind": "mini", "text_model_path": self.text_model_path, "video_tower": self.video_config.to_dict(),
                  "model_id": self.model_id}
        (out / "config.json").write_text(json.dumps(config, indent=2))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> MiniEmbedder:
        folder = Path(path)
        config_path = folder / "config.json"
        if not config_path.exists() or not (folder / WEIGHTS).exists():
            raise ConfigError(f"{folder} is not a saved mini embedder (needs config.json and {WEIGHTS}); "
                              "train one with `videosearch retriever train`")
        try:
            config = json.loads(config_path.read_text())
            tower = config["video_tower"]
            tower["channels"] = tuple(tower["channels"])
            video_config = VideoTowerConfig(**tower)
            weights = load_file(folder / WEIGHTS)
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
            raise ConfigError(f"{folder} holds a damaged embedder ({type(exc).__name__}: {exc}): save it again, or "
                              "train one with `videosearch retriever train`") from None
        embedder = cls(video_config, config.get("text_model_path"))
        try:
            embedder.video.load_state_dict(weights)
        except RuntimeError as exc:
            raise ConfigError(f"{folder / WEIGHTS} does not fit the video tower of its config.json (saved by another "
                              f"version?): retrain with `videosearch retriever train`. {str(exc).splitlines()[0]}"
                              ) from None
        return embedder
