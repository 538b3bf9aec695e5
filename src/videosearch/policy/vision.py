"""How a policy sees a video: what stands for it in the prompt, and how prefill and cached steps run.

`mini`: the policy's frozen frame encoder gives per-frame features; `vision_projector` maps them into the LM's
input embeddings at `<frame>` placeholders, after the encoder's event log ("In the desert: 1-4s small red circle
moves left; ...", `policy.event_log`), which carries the true times. Without an encoder, the retriever's frame
features stand in, each `<frame>` after its true timestamp ("12s<frame>").
`paper`: Qwen3-VL's own vision tower and merger read the frames at `<|video_pad|>` placeholders, each temporal
group after its true time ("<1.0 seconds>"); the text positions are M-RoPE's, so a cached step adds each row's
rope delta from the prefill (`QwenCache`).
"""

from __future__ import annotations

import importlib.util
from abc import ABCMeta, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from peft import PeftModel
from torch import nn
from transformers import AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase, Qwen3VLForConditionalGeneration
from transformers.cache_utils import Cache

from videosearch.corpus.types import VideoFrames
from videosearch.embed.base import Embedder
from videosearch.embed.mini import MiniEmbedder, frames_to_tensor
from videosearch.embed.qwen_vl import (
    VIDEO_PAD,
    mm_token_type_ids,
    tiny_qwen3vl,
    tiny_qwen3vl_tokenizer,
    video_prompt,
    video_to_qwen_inputs,
)
from videosearch.errors import ConfigError
from videosearch.policy.event_log import read_events, render_log
from videosearch.policy.frame_encoder import FrameEncoder
from videosearch.policy.rollout import Step, causal_lm_extend, qwen3vl_extend

if TYPE_CHECKING:
    from videosearch.policy.policy import PolicyConfig

FRAME_TOKEN = "<frame>"
_RECENT_CLIPS = 64  # a batch's clips, whose features the prompt's log and its <frame> rows both need


class VisionAdapter(nn.Module, metaclass=ABCMeta):
    """The preset-specific half of the policy; the LM is passed in so LoRA wrapping stays outside."""

    extra_tokens: list[str] = []
    #: ids that stand for frames in a prompt (set by `bind`): the policy must never write one
    placeholder_ids: list[int] = []
    #: (height, width) frames are decoded at for this adapter; None keeps the decoded size
    frame_size: tuple[int, int] | None = None

    @abstractmethod
    def video_text(self, video: VideoFrames) -> str:
        """The prompt text that stands for `video`."""

    @abstractmethod
    def prefill(self, lm: nn.Module, ids: torch.Tensor, mask: torch.Tensor, videos: list[VideoFrames],
                logits_to_keep: int = 1) -> tuple[object, torch.Tensor, torch.Tensor]:
        """Run the prompt: (cache, final-norm hidden state of the last position (B, H), logits (B, K, V) of the
        last K = `logits_to_keep` positions)."""

    @abstractmethod
    def extend(self, lm: nn.Module, cache: object, inputs_embeds: torch.Tensor,
               mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """T positions (B, T, H) on the cache: (hidden (B, T, H), logits (B, T, V)); `mask` (B, L + T) includes
        them."""

    def step(self, lm: nn.Module, cache: object, inputs_embeds: torch.Tensor,
             mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One position on the cache: (hidden (B, H), logits (B, V)); `mask` (B, L + 1) includes it."""
        hidden, logits = self.extend(lm, cache, inputs_embeds, mask)
        return hidden[:, -1], logits[:, -1]

    def select_rows(self, cache: object, rows: torch.Tensor) -> object:
        """The cache of the prefilled rows `rows` (B,), in that order (a row may repeat: prompts shared)."""
        cache.batch_select_indices(rows)  # type: ignore[attr-defined]
        return cache

    def bind(self, tokenizer: object) -> None:
        """Look up the ids of `extra_tokens` once they are in the vocabulary."""

    def step_fn(self, lm: nn.Module, cache: object) -> Step:
        return lambda inputs_embeds, mask: self.step(lm, cache, inputs_embeds, mask)[0]

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {}


class MiniVision(VisionAdapter):
    """Frozen per-frame features -> `vision_projector` -> LM input embeddings at `<frame>` tokens.

    The features come from the policy's own `FrameEncoder` (trained on the world's specs) or, without one, from
    the retriever's video tower (which says little about who is where: DESIGN.md section 8)."""

    extra_tokens = [FRAME_TOKEN]

    def __init__(self, embedder: MiniEmbedder, hidden_dim: int, frame_encoder: FrameEncoder | None = None,
                 token_norm: float = 1.0) -> None:
        super().__init__()
        # every <frame> row gets the mean norm of the LM's token embeddings: an untrained projector's rows were
        # ~28x larger (88 against 3.2), and rows that large drown the text around them
        self.token_norm = token_norm
        self.tower = embedder.video.eval().requires_grad_(False)
        self.frame_encoder = frame_encoder.eval().requires_grad_(False) if frame_encoder is not None else None
        size = frame_encoder.config.frame_size if frame_encoder is not None else embedder.frame_size
        self.frame_size = (size, size)  # type: ignore[assignment]
        feature_dim = frame_encoder.feature_dim if frame_encoder is not None else embedder.video_config.feature_dim
        self.vision_projector = nn.Sequential(nn.Linear(feature_dim, hidden_dim), nn.GELU(),
                                              nn.Linear(hidden_dim, hidden_dim))
        self.frame_id = -1  # see bind
        self._recent: OrderedDict[int, tuple[VideoFrames, torch.Tensor]] = OrderedDict()

    def train(self, mode: bool = True) -> MiniVision:
        super().train(mode)
        self.tower.eval()  # frozen: dropout stays off
        if self.frame_encoder is not None:
            self.frame_encoder.eval()
        return self

    def bind(self, tokenizer: object) -> None:
        self.frame_id = int(tokenizer.convert_tokens_to_ids(FRAME_TOKEN))  # type: ignore[attr-defined]
        self.placeholder_ids = [self.frame_id]

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"vision_projector": self.vision_projector}

    def video_text(self, video: VideoFrames) -> str:
        if self.frame_encoder is None:
            return "".join(f"{t:g}s{FRAME_TOKEN}" for t in video.timestamps_s)  # "12s<frame>12.5s<frame>"
        log = render_log(*read_events(self.frame_encoder, self._clip_features(video), list(video.timestamps_s)))
        return log + "\n" + FRAME_TOKEN * len(video)

    def _embed(self, lm: nn.Module, ids: torch.Tensor, videos: list[VideoFrames]) -> torch.Tensor:
        embeds = lm.get_input_embeddings()(ids)
        if self.frame_encoder is None:
            frames, _, frame_mask = frames_to_tensor(videos, self.frame_size[0])  # type: ignore[index]
            with torch.no_grad():
                features = self.tower.frame_features(frames.to(embeds.device))[frame_mask.to(embeds.device)]
        else:
            features = torch.cat([self._clip_features(v) for v in videos]).to(embeds.device)  # (sum T, F)
        projected = nn.functional.normalize(self.vision_projector(features), dim=-1) * self.token_norm  # (sum T, H)
        slots = ids == self.frame_id
        if int(slots.sum()) != len(projected):
            raise ConfigError(f"the prompts hold {int(slots.sum())} {FRAME_TOKEN} tokens for {len(projected)} frames")
        return embeds.masked_scatter(slots[..., None], projected.to(embeds.dtype))

    @torch.no_grad()
    def _clip_features(self, video: VideoFrames) -> torch.Tensor:
        """The frame encoder's features (T, F) of one clip (its neighbours are its own frames), computed once for
        the prompt's log and the `<frame>` rows: the last few clips are kept, each with the clip it belongs to."""
        key = id(video)
        if key in self._recent and self._recent[key][0] is video:  # held here, so the id is still this clip's
            self._recent.move_to_end(key)
            return self._recent[key][1]
        frames, _, _ = frames_to_tensor([video], self.frame_size[0])  # type: ignore[index]
        features = self.frame_encoder(frames.to(self.vision_projector[0].weight.device))[0]  # type: ignore[misc]
        self._recent[key] = (video, features)
        while len(self._recent) > _RECENT_CLIPS:
            self._recent.popitem(last=False)
        return features

    def prefill(self, lm: nn.Module, ids: torch.Tensor, mask: torch.Tensor, videos: list[VideoFrames],
                logits_to_keep: int = 1) -> tuple[object, torch.Tensor, torch.Tensor]:
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        out = lm(inputs_embeds=self._embed(lm, ids, videos), attention_mask=mask, position_ids=position_ids,
                 use_cache=True, output_hidden_states=True, logits_to_keep=logits_to_keep)
        return out.past_key_values, out.hidden_states[-1][:, -1], out.logits

    def extend(self, lm: nn.Module, cache: object, inputs_embeds: torch.Tensor,
               mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return causal_lm_extend(lm, cache, inputs_embeds, mask)  # type: ignore[arg-type]


@dataclass(frozen=True)
class QwenCache:
    """The KV cache of a Qwen3-VL prefill and what its later steps need to place their M-RoPE positions."""

    past_key_values: Cache
    rope_deltas: torch.Tensor  # long (B, 1): M-RoPE position minus count of real tokens, for text after the video


class QwenVision(VisionAdapter):
    """Qwen3-VL's own vision tower, run inside the LM's forward: patches in, features at `<|video_pad|>` tokens.

    Nothing here is trained: the tower and merger stay frozen, LoRA sits on the language model, the SQR head on
    the policy. Frames are resized by `video_to_qwen_inputs` within Qwen3-VL's pixel budget, so `frame_size` is None.
    """

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.model_config = config  # the LM's config: patch sizes and the vision token ids

    def bind(self, tokenizer: object) -> None:
        video_id = int(tokenizer.convert_tokens_to_ids(VIDEO_PAD))  # type: ignore[attr-defined]
        if video_id != self.model_config.video_token_id:
            raise ConfigError(f"the tokenizer's {VIDEO_PAD} is id {video_id}, the model's video_token_id is "
                              f"{self.model_config.video_token_id}: load both from the same Qwen3-VL folder")
        self.placeholder_ids = [video_id, int(self.model_config.image_token_id)]

    def video_text(self, video: VideoFrames) -> str:
        # the pixels are computed again at prefill: cheap next to the tower, and never stale
        return video_prompt(video_to_qwen_inputs(video.frames, video.timestamps_s, self.model_config,
                                                 source=video.video_id))

    def prefill(self, lm: nn.Module, ids: torch.Tensor, mask: torch.Tensor, videos: list[VideoFrames],
                logits_to_keep: int = 1) -> tuple[object, torch.Tensor, torch.Tensor]:
        inputs = [video_to_qwen_inputs(v.frames, v.timestamps_s, self.model_config, source=v.video_id)
                  for v in videos]
        n_slots = int((ids == self.model_config.video_token_id).sum())
        n_tokens = sum(i.num_video_tokens for i in inputs)
        if n_slots != n_tokens:
            raise ConfigError(f"the prompts hold {n_slots} {VIDEO_PAD} tokens for {n_tokens} video tokens")
        qwen = _qwen_model(lm)
        pixels = torch.cat([i.pixel_values_videos for i in inputs]).to(ids.device, qwen.dtype)  # (sum patches, F)
        grids = torch.cat([i.video_grid_thw for i in inputs]).to(ids.device)  # (B, 3), in batch order
        types = mm_token_type_ids(ids, self.model_config)
        # positions made here rather than inside the forward, so the deltas are ours and not the model's state
        position_ids, rope_deltas = qwen.model.get_rope_index(ids, types, video_grid_thw=grids,
                                                              attention_mask=mask)  # (3, B, L), (B, 1)
        out = lm(input_ids=ids, attention_mask=mask, position_ids=position_ids, pixel_values_videos=pixels,
                 video_grid_thw=grids, mm_token_type_ids=types, use_cache=True, output_hidden_states=True,
                 logits_to_keep=logits_to_keep)
        cache = QwenCache(out.past_key_values, rope_deltas)
        return cache, out.hidden_states[-1][:, -1], out.logits

    def extend(self, lm: nn.Module, cache: object, inputs_embeds: torch.Tensor,
               mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert isinstance(cache, QwenCache), type(cache)
        return qwen3vl_extend(lm, cache.past_key_values, cache.rope_deltas, inputs_embeds, mask)

    def select_rows(self, cache: object, rows: torch.Tensor) -> object:
        assert isinstance(cache, QwenCache), type(cache)
        cache.past_key_values.batch_select_indices(rows)
        return QwenCache(cache.past_key_values, cache.rope_deltas[rows.to(cache.rope_deltas.device)])


def _qwen_model(lm: nn.Module) -> Qwen3VLForConditionalGeneration:
    """The Qwen3-VL model under a peft wrapper (or `lm` itself once LoRA is merged)."""
    model = lm.get_base_model() if isinstance(lm, PeftModel) else lm
    assert isinstance(model, Qwen3VLForConditionalGeneration), type(model)
    return model


def load_qwen3vl(lm_path: str | None) -> tuple[Qwen3VLForConditionalGeneration, PreTrainedTokenizerBase]:
    """The `paper` preset's LM and tokenizer from a local Qwen3-VL folder: bf16 with SDPA (flash-attention when
    installed) on a GPU, fp32 on a CPU."""
    if not lm_path or not (Path(lm_path) / "config.json").exists():
        raise ConfigError(f"the paper policy needs lm_path, got {lm_path!r}: pass the local Qwen3-VL-2B-Instruct "
                          "folder (with config.json), e.g. -o policy.lm_path=models/Qwen3-VL-2B-Instruct")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    flash = device == "cuda" and importlib.util.find_spec("flash_attn") is not None
    model = Qwen3VLForConditionalGeneration.from_pretrained(
        lm_path, dtype=torch.bfloat16 if device == "cuda" else torch.float32,
        attn_implementation="flash_attention_2" if flash else "sdpa")
    return model.to(device), AutoTokenizer.from_pretrained(lm_path)


def build_vision(config: PolicyConfig, embedder: Embedder,
                 folder: Path | None = None) -> tuple[nn.Module, object, VisionAdapter]:
    """The preset's base LM, its tokenizer and its vision adapter (the vocabulary is not grown yet); a relative
    `frame_encoder` path is read from `folder` (the checkpoint's)."""
    from videosearch.policy import lm as lms

    if config.preset in ("mini", "tiny-mini"):
        if not isinstance(embedder, MiniEmbedder):
            raise ConfigError(f"the {config.preset} policy reads the mini embedder's video tower; "
                              f"got {type(embedder).__name__}")
        if config.preset == "mini" or config.lm_path:
            lm, tokenizer = lms.load_causal_lm(config.lm_path or lms.convert_smollm2())
        else:
            lm, tokenizer = lms.tiny_mini_lm()
        encoder = None
        if config.frame_encoder:
            path = Path(config.frame_encoder)
            encoder = FrameEncoder.from_pretrained(folder / path if folder is not None and not path.is_absolute()
                                                   else path)
        table = lm.get_input_embeddings().weight.detach()
        return lm, tokenizer, MiniVision(embedder, table.shape[1], encoder, float(table.norm(dim=-1).mean()))
    if config.preset == "paper" or config.lm_path:
        qwen, tokenizer = load_qwen3vl(config.lm_path)
    else:
        tokenizer = tiny_qwen3vl_tokenizer()
        with torch.random.fork_rng():  # seeded: a checkpoint loads back onto the same base weights
            torch.manual_seed(0)
            qwen = tiny_qwen3vl(tokenizer)
    return qwen, tokenizer, QwenVision(qwen.config)
