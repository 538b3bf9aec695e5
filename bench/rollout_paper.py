"""SQR at `paper` shapes on a GPU: Qwen3-VL-2B-sized random weights (bf16), one turn with 64 frames at 448x448.

Run on a CUDA machine: `python bench/rollout_paper.py` (`--smoke`: the tiny model on the CPU, to check the script).
Times, after the turn's prefill: 8 latent steps on the KV
cache (ours), the reference's way (7 re-prefills of the whole prompt with the video, one per later latent), and
HQR's 27 greedy text tokens on the cache. DESIGN.md section 7 holds the anchors. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

from videosearch.corpus.types import VideoFrames
from videosearch.embed.qwen_vl import (
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    tiny_qwen3vl,
    tiny_qwen3vl_tokenizer,
)
from videosearch.policy.policy import Policy, PolicyConfig, _add_tokens
from videosearch.policy.rollout import rollout_latents
from videosearch.policy.sqr import SQRHead
from videosearch.policy.vision import QwenVision


def qwen3vl_2b_shapes(tokenizer: object) -> Qwen3VLForConditionalGeneration:
    """Random weights with Qwen3-VL-2B-Instruct's published shapes; special ids from the (byte-level) tokenizer."""
    vocab = tokenizer.get_vocab()  # type: ignore[attr-defined]
    text = dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=262144,
                rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [24, 20, 20],
                                 "mrope_interleaved": True})
    vision = dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, out_hidden_size=2048,
                  patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                  deepstack_visual_indexes=[5, 11, 17])
    config = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True,
                           image_token_id=vocab[IMAGE_PAD], video_token_id=vocab[VIDEO_PAD],
                           vision_start_token_id=vocab[VISION_START], vision_end_token_id=vocab[VISION_END])
    return Qwen3VLForConditionalGeneration(config)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn: object, repeats: int = 3) -> float:
    """Best wall time of `fn` over `repeats` runs, after one warm-up."""
    fn()  # type: ignore[operator]
    best = float("inf")
    for _ in range(repeats):
        _sync()
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        _sync()
        best = min(best, time.perf_counter() - began)
    return best


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model, 4 small frames, CPU fp32")
    args = parser.parse_args()
    torch.manual_seed(0)
    tokenizer = tiny_qwen3vl_tokenizer()
    device, dtype = ("cpu", torch.float32) if args.smoke else ("cuda", torch.bfloat16)
    with torch.device(device):  # random init where the weights will live
        lm = tiny_qwen3vl(tokenizer) if args.smoke else qwen3vl_2b_shapes(tokenizer)
    _add_tokens(lm, tokenizer, ["<REFINE>"])
    lm = lm.to(device, dtype).eval()
    hidden = lm.config.text_config.hidden_size
    sqr = SQRHead(hidden, hidden, hidden).to(device, dtype)
    torch.nn.init.normal_(sqr.refine_projector[3].weight, std=0.02)
    policy = Policy(PolicyConfig(preset="paper", extra_tokens=["<REFINE>"]), lm, tokenizer, QwenVision(lm.config), sqr)
    n, side = (4, 64) if args.smoke else (64, 448)
    frames = np.random.default_rng(0).integers(0, 255, (n, side, side, 3), dtype=np.uint8)
    video = VideoFrames("v", frames, np.arange(n, dtype=np.float32), float(n))
    prompt = policy._prompt("the person opens the fridge after washing the dishes", video, "sqr")
    ids, mask = policy._tokenize([prompt])
    ids = torch.cat([ids, torch.full((1, 1), policy.refine_id, device=ids.device)], dim=1)
    mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    embed = lm.get_input_embeddings()

    def prefill() -> tuple:
        return policy.vision.prefill(lm, ids, mask, [video])

    def sqr_cached() -> torch.Tensor:
        cache, last, _ = prefill()
        return rollout_latents(policy.vision.step_fn(lm, cache), sqr, last, mask, 8)

    def sqr_reference() -> None:
        prefill()
        for extra in range(1, 8):  # the reference re-runs prompt + the latents so far for each later latent
            longer = torch.cat([ids, ids[:, -1:].expand(1, extra)], dim=1)
            policy.vision.prefill(lm, longer, torch.ones_like(longer), [video])

    def hqr_tokens() -> None:
        cache, _, logits = prefill()
        step_mask = mask
        for _ in range(27):
            step_mask = torch.cat([step_mask, torch.ones_like(step_mask[:, :1])], dim=1)
            _, step_logits = policy.vision.step(lm, cache, embed(logits[:, -1].argmax(-1))[:, None], step_mask)
            logits = step_logits[:, None]

    prefill_s = _timed(prefill)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    result = {"device": name, "prompt_tokens": int(ids.shape[1]), "dtype": str(dtype),
              "prefill_s": round(prefill_s, 4),
              "sqr_cached_8_latents_s": round(_timed(sqr_cached) - prefill_s, 4),
              "sqr_reference_7_reprefills_s": round(_timed(sqr_reference) - prefill_s, 4),
              "hqr_27_tokens_s": round(_timed(hqr_tokens) - prefill_s, 4)}
    result["speedup"] = round(result["sqr_reference_7_reprefills_s"] / result["sqr_cached_8_latents_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
