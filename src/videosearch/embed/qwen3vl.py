"""The `paper` retriever: Qwen3-VL-Embedding through transformers' Qwen3-VL classes.

A query and a video are embedded alike: the chat template with the system text "Represent the user's input.", the
input as the user message and the generation prompt; the vector is the final-norm hidden state of the last token,
L2-normalised (truncated to its first `dim` dimensions and re-normalised when `dim` is set: Matryoshka). Videos
are frames sampled at `fps` (at most `max_frames`) within a pixel budget, stamped with their true times; each
segment, a window of `segment_frames` frames, is embedded as a short video of its own, for grounding. SQR's latents
go where the reference release puts them: before the query's last token (usually its full stop), ahead of the
template's closing tokens.

    embedder = Qwen3VLEmbedder.from_pretrained("models/Qwen3-VL-Embedding-2B")  # a local folder or a hub id
    engine, result = SearchEngine.build("videos/", embedder)
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, PreTrainedTokenizerBase, Qwen3VLModel

from videosearch.config import build_config
from videosearch.corpus.types import VideoFrames
from videosearch.embed.base import (
    Embedder,
    VideoEmbedding,
    masked_mean_embedding,
    model_errors,
    read_json_object,
    save_reference,
    segment_ranges,
    segment_spans_s,
    weights_digest,
)
from videosearch.embed.qwen_vl import QWEN3VL_MIN_PIXELS, mm_token_type_ids, video_prompt, video_to_qwen_inputs
from videosearch.errors import ConfigError

INSTRUCTION = "Represent the user's input."
#: the Qwen3-VL-Embedding release's bound on one video's pixels summed over its frames
TOTAL_PIXELS = 7_864_320


@dataclass
class Qwen3VLEmbedderConfig:
    """Sampling, pooling and precision of the Qwen3-VL-Embedding retriever; the weights come from `model_path`."""

    model_path: str = ""
    dim: int = 0  # Matryoshka: keep the first `dim` dimensions, re-normalised (0 = all)
    fps: float = 1.0
    max_frames: int = 64
    total_pixels: int = TOTAL_PIXELS  # one video's frames together, after resizing
    segment_frames: int = 8  # 0: no segments (the whole video is its only segment)
    segment_stride: int = 4
    batch_size: int = 8  # texts or segments per forward pass
    device: str = "auto"  # "auto": cuda when available, else cpu
    dtype: str = "auto"  # "auto": bfloat16 on a GPU, float32 on a CPU

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ConfigError(f"qwen3vl.fps={self.fps!r} must be positive")
        for name in ("max_frames", "total_pixels", "segment_stride", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"qwen3vl.{name}={value!r} must be a positive integer")
        for name in ("dim", "segment_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"qwen3vl.{name}={value!r} must be an integer >= 0")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(f"qwen3vl.dtype={self.dtype!r}: use auto, float32, bfloat16 or float16")


class Qwen3VLEmbedder(Embedder):
    """Queries, videos and queries with latents through one Qwen3-VL, pooled at the last token."""

    def __init__(self, model: Qwen3VLModel, tokenizer: PreTrainedTokenizerBase,
                 config: Qwen3VLEmbedderConfig | None = None) -> None:
        if not isinstance(model, Qwen3VLModel):
            raise ConfigError(f"{type(model).__name__} is not a Qwen3VLModel")
        self.config = config or Qwen3VLEmbedderConfig()
        width = int(model.config.text_config.hidden_size)
        if self.config.dim > width:
            raise ConfigError(f"qwen3vl.dim={self.config.dim} exceeds the model's {width} dimensions")
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"
        self.dim = self.config.dim or width
        self.fps, self.max_frames = self.config.fps, self.config.max_frames
        self._model_id: str | None = None
        # tokens of the template after the user's text: the latents go one token before them
        tail = self._template("\x00").split("\x00", 1)[1]
        self._tail_tokens = len(self.tokenizer(tail, add_special_tokens=False)["input_ids"])
        self._temporal_patch = int(model.config.vision_config.temporal_patch_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def model_id(self) -> str:  # type: ignore[override]
        if self._model_id is None:
            self._model_id = f"qwen3vl-emb-{self.dim}d-{weights_digest(self.model)}"
        return self._model_id

    @property
    def latent_dim(self) -> int:
        return int(self.model.config.text_config.hidden_size)

    @property
    def latent_norm(self) -> float:
        return float(self.model.get_input_embeddings().weight.float().norm(dim=-1).mean())

    def _template(self, user: str) -> str:
        messages = [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": user}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _pool(self, hidden: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Rows of `hidden` (B, L, H) at positions `last` (B,), truncated to `dim`, as float32 unit vectors (on the
        model's device)."""
        pooled = hidden[torch.arange(len(last), device=hidden.device), last.to(hidden.device)].float()
        return F.normalize(pooled[:, : self.dim], dim=-1)

    # ---- text ---------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> np.ndarray:
        out = [self._encode_text(texts[i: i + self.config.batch_size]).cpu()
               for i in range(0, len(texts), self.config.batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)

    def embed_text_with_latents(self, texts: list[str], latents: torch.Tensor) -> torch.Tensor:
        if latents.dim() != 3 or latents.shape[0] != len(texts) or latents.shape[2] != self.latent_dim:
            raise ValueError(f"latents must be (B={len(texts)}, N, {self.latent_dim}), got {tuple(latents.shape)}")
        return self._encode_text(texts, latents)

    def mean_token_embedding(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, return_tensors="pt")
        return masked_mean_embedding(self.model.get_input_embeddings(), batch["input_ids"], batch["attention_mask"])

    def _encode_text(self, texts: list[str], latents: torch.Tensor | None = None) -> torch.Tensor:
        batch = self.tokenizer([self._template(t) for t in texts], padding=True, return_tensors="pt")
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        lengths = mask.sum(1)
        if latents is None:
            hidden = self.model(input_ids=ids, attention_mask=mask,
                                position_ids=_text_positions(mask)).last_hidden_state
            return self._pool(hidden, lengths - 1)
        embeds = self.model.get_input_embeddings()(ids)
        latents = latents.to(embeds.device, embeds.dtype)
        at = (lengths - self._tail_tokens - 1).tolist()  # before the query's last token, as the release does
        ones = mask.new_ones(latents.shape[1])
        embeds = torch.stack([torch.cat([embeds[i, :a], latents[i], embeds[i, a:]]) for i, a in enumerate(at)])
        mask = torch.stack([torch.cat([mask[i, :a], ones, mask[i, a:]]) for i, a in enumerate(at)])
        hidden = self.model(inputs_embeds=embeds, attention_mask=mask,
                            position_ids=_text_positions(mask)).last_hidden_state
        return self._pool(hidden, lengths - 1 + latents.shape[1])

    # ---- video --------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def embed_clips(self, clips: list[tuple[np.ndarray, np.ndarray]],
                    budgets: list[int] | None = None) -> torch.Tensor:
        """(frames uint8 (T, H, W, 3), times (T,) seconds) clips -> float32 (C, D) unit vectors, in batches; each
        clip is resized within its pixel budget (T * H * W), `total_pixels` unless `budgets` says otherwise."""
        budgets = budgets or [self.config.total_pixels] * len(clips)
        out = []
        for start in range(0, len(clips), self.config.batch_size):
            part = zip(clips[start: start + self.config.batch_size], budgets[start: start + self.config.batch_size])
            inputs = [video_to_qwen_inputs(frames, times, self.model.config, min_pixels=QWEN3VL_MIN_PIXELS,
                                           max_pixels=budget)
                      for (frames, times), budget in part]
            batch = self.tokenizer([self._template(video_prompt(v)) for v in inputs], padding=True,
                                   return_tensors="pt")
            ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
            pixels = torch.cat([v.pixel_values_videos for v in inputs]).to(self.device, self.model.dtype)
            hidden = self.model(input_ids=ids, attention_mask=mask, pixel_values_videos=pixels,
                                video_grid_thw=torch.cat([v.video_grid_thw for v in inputs]).to(self.device),
                                mm_token_type_ids=mm_token_type_ids(ids, self.model.config)).last_hidden_state
            out.append(self._pool(hidden, mask.sum(1) - 1).cpu())
        return torch.cat(out)

    def embed_video(self, videos: list[VideoFrames]) -> list[VideoEmbedding]:
        results = []
        for video in videos:
            clips, budgets = [(video.frames, video.timestamps_s)], [self.config.total_pixels]
            if self.config.segment_frames:
                ranges = segment_ranges(len(video), self.config.segment_frames, self.config.segment_stride)
                clips += [(video.frames[a:b], video.timestamps_s[a:b]) for a, b in ranges]
                # a segment's frames keep the whole video's resolution (their share of its budget): a whole
                # video's budget over a few frames would make each segment cost as much as the video
                per_frame = self.config.total_pixels / max(len(video), self._temporal_patch)
                budgets += [max(QWEN3VL_MIN_PIXELS, int(per_frame * max(b - a, self._temporal_patch)))
                            for a, b in ranges]
            else:  # the whole video is its only segment
                ranges = [(0, len(video))]
            vectors = self.embed_clips(clips, budgets).numpy()
            results.append(VideoEmbedding(vectors[0], vectors[1:] if len(vectors) > 1 else vectors[:1],
                                          np.asarray(segment_spans_s(video, ranges, self.fps), np.float32),
                                          video.duration_s))
        return results

    # ---- persistence --------------------------------------------------------------------------------------------
    def save_pretrained(self, out_dir: str | Path) -> None:
        """Write the settings and a reference to the model folder (an index does not copy gigabytes of weights)."""
        save_reference(out_dir, "qwen3vl", asdict(self.config), self.model_id)

    @classmethod
    def from_pretrained(cls, path: str | Path, config: Qwen3VLEmbedderConfig | None = None) -> Qwen3VLEmbedder:
        """A saved embedder folder (`save_pretrained`), or a Qwen3-VL-Embedding checkpoint: a folder or a hub id."""
        folder = Path(path)
        meta = read_json_object(folder / "config.json") if (folder / "config.json").is_file() else {}
        if meta.get("kind") == "qwen3vl":
            config = config or build_config(Qwen3VLEmbedderConfig, meta.get("embedder", {}), "qwen3vl embedder")
        else:
            config = config or Qwen3VLEmbedderConfig()
            config.model_path = str(folder.resolve()) if folder.exists() else str(path)
        device = torch.device(config.device if config.device != "auto" else
                              "cuda" if torch.cuda.is_available() else "cpu")
        dtype = getattr(torch, config.dtype) if config.dtype != "auto" else (
            torch.bfloat16 if device.type == "cuda" else torch.float32)
        flash = device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None
        with model_errors(config.model_path, "a Qwen3-VL model"):
            model = Qwen3VLModel.from_pretrained(config.model_path, dtype=dtype,
                                                 attn_implementation="flash_attention_2" if flash else "sdpa")
            tokenizer = AutoTokenizer.from_pretrained(config.model_path)
        return cls(model.to(device), tokenizer, config)


def _text_positions(mask: torch.Tensor) -> torch.Tensor:
    """M-RoPE positions (3, B, L) of a text-only sequence: every section counts the real tokens. Given explicitly,
    since a Qwen3-VL otherwise reuses the position offsets of its last call with a video."""
    return (mask.cumsum(-1) - 1).clamp(min=0)[None].expand(3, -1, -1)
