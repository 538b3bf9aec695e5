"""How a policy sees a video: what stands for it in the prompt, and how prefill and cached steps run.

`mini`: the frozen video tower of the mini embedder gives per-frame features; `vision_projector` maps them
into the LM's input embeddings at `<frame>` placeholders, each after its true timestamp ("12.0s <frame>").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from videosearch.corpus.types import VideoFrames
from videosearch.embed.base import Embedder
from videosearch.embed.mini import MiniEmbedder, frames_to_tensor
from videosearch.errors import ConfigError
from videosearch.policy.rollout import Step

if TYPE_CHECKING:
    from videosearch.policy.policy import PolicyConfig

FRAME_TOKEN = "<frame>"


class VisionAdapter(nn.Module):
    """The preset-specific half of the policy; the LM is passed in so LoRA wrapping stays outside."""

    extra_tokens: list[str] = []
    #: (height, width) frames are decoded at for this adapter; None keeps the decoded size
    frame_size: tuple[int, int] | None = None

    def video_text(self, video: VideoFrames) -> str:
        """The prompt text that stands for `video`."""
        raise NotImplementedError

    def prefill(self, lm: nn.Module, ids: torch.Tensor, mask: torch.Tensor, videos: list[VideoFrames],
                all_logits: bool = False) -> tuple[object, torch.Tensor, torch.Tensor]:
        """Run the prompt: (cache, final-norm hidden state of the last position (B, H), logits (B, V) of the
        last position, or (B, L, V) of every position with `all_logits`)."""
        raise NotImplementedError

    def step(self, lm: nn.Module, cache: object, inputs_embeds: torch.Tensor,
             mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One position on the cache: (hidden (B, H), logits (B, V)); `mask` (B, L + 1) includes it."""
        raise NotImplementedError

    def bind(self, tokenizer: object) -> None:
        """Look up the ids of `extra_tokens` once they are in the vocabulary."""

    def step_fn(self, lm: nn.Module, cache: object) -> Step:
        return lambda inputs_embeds, mask: self.step(lm, cache, inputs_embeds, mask)[0]

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {}


class MiniVision(VisionAdapter):
    """Frozen video-tower frame features -> `vision_projector` -> LM input embeddings at `<frame>` tokens."""

    extra_tokens = [FRAME_TOKEN]

    def __init__(self, embedder: MiniEmbedder, hidden_dim: int) -> None:
        super().__init__()
        self.tower = embedder.video.eval().requires_grad_(False)
        self.frame_size = (embedder.frame_size, embedder.frame_size)  # type: ignore[assignment]
        feature_dim = embedder.video_config.feature_dim
        self.vision_projector = nn.Sequential(nn.Linear(feature_dim, hidden_dim), nn.GELU(),
                                              nn.Linear(hidden_dim, hidden_dim))
        self.frame_id = -1  # see bind

    def train(self, mode: bool = True) -> MiniVision:
        super().train(mode)
        self.tower.eval()  # frozen: dropout stays off
        return self

    def bind(self, tokenizer: object) -> None:
        self.frame_id = int(tokenizer.convert_tokens_to_ids(FRAME_TOKEN))  # type: ignore[attr-defined]

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"vision_projector": self.vision_projector}

    def video_text(self, video: VideoFrames) -> str:
        return " ".join(f"{t:.1f}s {FRAME_TOKEN}" for t in video.timestamps_s)

    def _embed(self, lm: nn.Module, ids: torch.Tensor, videos: list[VideoFrames]) -> torch.Tensor:
        embeds = lm.get_input_embeddings()(ids)
        frames, _, frame_mask = frames_to_tensor(videos, self.frame_size[0])  # type: ignore[index]
        with torch.no_grad():
            features = self.tower.frame_features(frames)  # (B, T, F)
        projected = self.vision_projector(features[frame_mask])  # (sum T, H), rows in order
        slots = ids == self.frame_id
        if int(slots.sum()) != len(projected):
            raise ConfigError(f"the prompts hold {int(slots.sum())} {FRAME_TOKEN} tokens for {len(projected)} frames")
        return embeds.masked_scatter(slots[..., None], projected.to(embeds.dtype))

    def prefill(self, lm: nn.Module, ids: torch.Tensor, mask: torch.Tensor, videos: list[VideoFrames],
                all_logits: bool = False) -> tuple[object, torch.Tensor, torch.Tensor]:
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        out = lm(inputs_embeds=self._embed(lm, ids, videos), attention_mask=mask, position_ids=position_ids,
                 use_cache=True, output_hidden_states=True, logits_to_keep=0 if all_logits else 1)
        return out.past_key_values, out.hidden_states[-1][:, -1], out.logits if all_logits else out.logits[:, -1]

    def step(self, lm: nn.Module, cache: object, inputs_embeds: torch.Tensor,
             mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        position_ids = mask[:, :-1].sum(-1, keepdim=True)  # each row's count of real tokens so far
        out = lm(inputs_embeds=inputs_embeds, past_key_values=cache, attention_mask=mask, position_ids=position_ids,
                 use_cache=True, output_hidden_states=True)
        return out.hidden_states[-1][:, -1], out.logits[:, -1]


def build_vision(config: PolicyConfig, embedder: Embedder) -> tuple[nn.Module, object, VisionAdapter]:
    """The preset's base LM, its tokenizer and its vision adapter (the vocabulary is not grown yet)."""
    from videosearch.policy import lm as lms

    if config.preset in ("mini", "tiny-mini"):
        if not isinstance(embedder, MiniEmbedder):
            raise ConfigError(f"the {config.preset} policy reads the mini embedder's video tower; "
                              f"got {type(embedder).__name__}")
        if config.preset == "mini":
            lm, tokenizer = lms.load_causal_lm(config.lm_path or lms.convert_smollm2())
        else:
            lm, tokenizer = lms.tiny_mini_lm()
        return lm, tokenizer, MiniVision(embedder, lm.get_input_embeddings().embedding_dim)
    raise ConfigError(f"the {config.preset} policy is not available yet")
