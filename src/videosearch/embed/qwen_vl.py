"""Qwen3-VL video input for the `paper` policy and retriever; a tiny random Qwen3-VL (byte-level tokenizer) for tests.

We do the work of transformers' Qwen3-VL video processor ourselves, so no torchvision is needed: resize within a
pixel budget (`smart_resize`), pad time to the temporal patch, normalise, and flatten the patches in the
processor's order. Each temporal group is stamped with the mean time of the frames actually sampled, never an
assumed frame rate (the reference labelled subsampled frames as 1 fps).

    inputs = video_to_qwen_inputs(frames, times_s, model.config)
    text = f"{video_prompt(inputs)}{question}"        # the user message, then the chat template and tokenizer
    model(input_ids, attention_mask=mask, pixel_values_videos=inputs.pixel_values_videos,
          video_grid_thw=inputs.video_grid_thw, mm_token_type_ids=mm_token_type_ids(input_ids, model.config))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    PretrainedConfig,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)

from videosearch.errors import ConfigError, VideoReadError

VISION_START, VISION_END, VIDEO_PAD, IMAGE_PAD = "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|image_pad|>"
#: Qwen3-VL's video_preprocessor_config.json: mean/std, and `size` (pixels summed over all frames)
QWEN3VL_MEAN, QWEN3VL_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
QWEN3VL_MIN_PIXELS, QWEN3VL_MAX_PIXELS = 4096, 25165824
_TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", VISION_START, VISION_END, "<|vision_pad|>",
                        IMAGE_PAD, VIDEO_PAD]
_TINY_CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                       "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@dataclass(frozen=True)
class QwenVideoInputs:
    """One video as Qwen3-VL takes it; concatenate `pixel_values_videos` and `video_grid_thw` to batch videos."""

    pixel_values_videos: torch.Tensor  # float32 (grid_t * grid_h * grid_w, C * temporal_patch * patch * patch)
    video_grid_thw: torch.Tensor  # int64 (1, 3): [[grid_t, grid_h, grid_w]] in patches
    group_times_s: np.ndarray  # float64 (grid_t,): time of each temporal group, in seconds
    tokens_per_group: int  # video tokens per temporal group: grid_h * grid_w / merge**2

    @property
    def num_video_tokens(self) -> int:
        """All `<|video_pad|>` tokens of this video."""
        return len(self.group_times_s) * self.tokens_per_group


def smart_resize(num_frames: int, height: int, width: int, factor: int, temporal_factor: int,
                 min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen3-VL's frame size: multiples of `factor` near the aspect ratio, with t*h*w within the pixel budget."""
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise ConfigError(f"frames of {height}x{width} have an aspect ratio over 200, which Qwen3-VL cannot take")
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt(num_frames * height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _check_video(frames: np.ndarray, timestamps_s: np.ndarray, source: str) -> np.ndarray:
    """Raise VideoReadError on frames or times the model cannot take; returns the times as float64 (T,)."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        got = f"{type(frames).__name__} {getattr(frames, 'dtype', '')} {getattr(frames, 'shape', '')}"
        raise VideoReadError(source, f"frames must be a uint8 array (T, H, W, 3), got {got}")
    if frames.shape[0] == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise VideoReadError(source, f"no frames to show the model (shape {frames.shape})")
    times = np.asarray(timestamps_s, dtype=np.float64)
    if times.shape != (frames.shape[0],) or not np.isfinite(times).all() or (np.diff(times) < 0).any():
        raise VideoReadError(source, f"timestamps_s must be {frames.shape[0]} finite non-decreasing seconds, one per "
                                     f"frame, got shape {times.shape}")
    return times


def video_to_qwen_inputs(frames: np.ndarray, timestamps_s: np.ndarray, config: PretrainedConfig, *,
                         min_pixels: int = QWEN3VL_MIN_PIXELS, max_pixels: int = QWEN3VL_MAX_PIXELS,
                         source: str = "frames") -> QwenVideoInputs:
    """Turn sampled frames into Qwen3-VL's `pixel_values_videos`, exactly as its video processor does on a CPU.

    Args:
        frames: uint8 (T, H, W, 3) RGB frames, already sampled.
        timestamps_s: (T,) the time of each frame in seconds, non-decreasing.
        config: a Qwen3-VL config (or its `vision_config`): patch, merge and temporal patch sizes.
        min_pixels: lower bound of T * H * W after resizing (the processor's `size.shortest_edge`).
        max_pixels: upper bound of T * H * W after resizing (the processor's `size.longest_edge`).
        source: names the video in error messages.

    Returns:
        The patches, the grid, each temporal group's time and the video tokens per group.
    """
    times = _check_video(frames, timestamps_s, source)
    vision = getattr(config, "vision_config", config)
    try:
        patch, merge, t_patch = int(vision.patch_size), int(vision.spatial_merge_size), int(vision.temporal_patch_size)
    except AttributeError as e:
        raise ConfigError(f"config must be a Qwen3-VL config with a vision_config, got {type(config).__name__}") from e
    if not 0 < min_pixels <= max_pixels:
        raise ConfigError(f"min_pixels={min_pixels}, max_pixels={max_pixels}: need 0 < min_pixels <= max_pixels")
    n_frames, height, width, channels = frames.shape
    # the processor refuses fewer frames than a temporal patch; it pads them, so budget them as padded
    new_h, new_w = smart_resize(max(n_frames, t_patch), height, width, patch * merge, t_patch, min_pixels, max_pixels)
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T, C, H, W) uint8
    if (new_h, new_w) != (height, width):
        # torchvision resizes uint8 natively on a CPU with this call; so do we, to be equal to the processor
        video = F.interpolate(video, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
    mean = torch.tensor(QWEN3VL_MEAN).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(QWEN3VL_STD).view(1, 3, 1, 1) * 255.0
    video = (video.to(torch.float32) - mean) / std  # rescale to [0, 1] and normalise, fused as the processor does
    if pad := -n_frames % t_patch:
        video = torch.cat([video, video[-1:].expand(pad, -1, -1, -1)])
        times = np.concatenate([times, np.repeat(times[-1:], pad)])
    grid_t, grid_h, grid_w = video.shape[0] // t_patch, new_h // patch, new_w // patch
    patches = video.reshape(grid_t, t_patch, channels, grid_h // merge, merge, patch, grid_w // merge, merge, patch)
    # rows: t, merged-block row, merged-block col, row in block, col in block; features: C, t, y, x
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    pixel_values = patches.reshape(grid_t * grid_h * grid_w, channels * t_patch * patch * patch)
    groups = times.reshape(grid_t, t_patch)
    return QwenVideoInputs(
        pixel_values_videos=pixel_values,
        video_grid_thw=torch.tensor([[grid_t, grid_h, grid_w]], dtype=torch.long),
        group_times_s=(groups[:, 0] + groups[:, -1]) / 2,  # the processor's mean of first and last frame
        tokens_per_group=grid_h * grid_w // merge**2,
    )


def video_prompt(inputs: QwenVideoInputs) -> str:
    """The text that stands for the video in a user message, as Qwen3-VL's chat template and processor make it.

    The template writes `<|vision_start|><|video_pad|><|vision_end|>`; the processor replaces only the pad, per
    temporal group, by `<{t:.1f} seconds><|vision_start|>` + `<|video_pad|>` * tokens_per_group + `<|vision_end|>`,
    so the outer start/end pair stays around the groups.
    """
    chunk = VISION_START + VIDEO_PAD * inputs.tokens_per_group + VISION_END
    return VISION_START + "".join(f"<{t:.1f} seconds>{chunk}" for t in inputs.group_times_s) + VISION_END


def mm_token_type_ids(input_ids: torch.Tensor, config: PretrainedConfig) -> torch.Tensor:
    """Per-token modality the model needs with `video_grid_thw`: 0 text, 1 image, 2 video; same shape as input_ids."""
    types = torch.zeros_like(input_ids, dtype=torch.int)
    types[input_ids == config.image_token_id] = 1
    types[input_ids == config.video_token_id] = 2
    return types


def tiny_qwen3vl_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (one token per byte, no merges) with Qwen's special tokens and chat format, for tests."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(_TINY_SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=_TINY_CHAT_TEMPLATE)


def tiny_qwen3vl(tokenizer: PreTrainedTokenizerBase | None = None,
                 vocab_size: int | None = None) -> Qwen3VLForConditionalGeneration:
    """A random-init Qwen3-VL of the real class with the real patch sizes, for tests; special ids from `tokenizer`."""
    tokenizer = tokenizer if tokenizer is not None else tiny_qwen3vl_tokenizer()
    vocab_size = vocab_size if vocab_size is not None else len(tokenizer)
    vocab = tokenizer.get_vocab()
    vision_tokens = (IMAGE_PAD, VIDEO_PAD, VISION_START, VISION_END)
    if missing := [t for t in vision_tokens if vocab.get(t, vocab_size) >= vocab_size]:
        raise ConfigError(f"the tokenizer lacks {missing} or vocab_size={vocab_size} is too small: use one with "
                          "Qwen's vision tokens, e.g. tiny_qwen3vl_tokenizer()")
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                  patch_size=16, spatial_merge_size=2, temporal_patch_size=2,  # the real sizes: real preprocessing
                  num_position_embeddings=64, deepstack_visual_indexes=[0])
    # head_dim 16 has 8 rotary frequencies: mrope_section splits them over (t, h, w) as [24, 20, 20] does 64
    text = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
                rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [4, 2, 2],
                                 "mrope_interleaved": True},
                pad_token_id=tokenizer.pad_token_id)
    config = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True,
                           image_token_id=vocab[IMAGE_PAD], video_token_id=vocab[VIDEO_PAD],
                           vision_start_token_id=vocab[VISION_START], vision_end_token_id=vocab[VISION_END])
    return Qwen3VLForConditionalGeneration(config)
