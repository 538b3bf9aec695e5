"""The paper preset's speed at real 2B shapes with random weights: one script for an H100 or H200 (under 6 min).

Run on a CUDA machine: `python bench/gpu.py` (bf16, one turn's video of 64 frames at 448x448). `--cpu` runs every
measurement at reduced size on a CPU (the tiny Qwen3-VL, fp32, 4 frames of 64x64) with the same output; `--cpu-2b`
(`make full-size`) times one forward of the policy and of the embedder at the real 2B shapes on a CPU. Side by
side in one process, after each turn's prefill where one is needed:
- SQR: 8 latent steps on the turn's KV cache (ours) against the reference's way (a full re-prefill of the prompt
  with the video for each later latent) and against HQR's 27 greedy text tokens on the cache;
- the retriever (Qwen3-VL-Embedding-2B is a Qwen3-VL-2B; its weights here are the policy's): queries/s at batch
  32, videos/s and frames/s with and without segment vectors;
- the agent (SQR, 3 turns) over a small index of synthetic videos: episodes/s at batch 1 and at larger batches.
DESIGN.md section 7 holds the anchors. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

from videosearch.agent import Agent, AgentConfig
from videosearch.corpus.types import Moment, VideoFrames
from videosearch.corpus.video import write_video
from videosearch.embed import Qwen3VLEmbedder, Qwen3VLEmbedderConfig
from videosearch.embed.qwen_vl import (
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    tiny_qwen3vl,
    tiny_qwen3vl_tokenizer,
)
from videosearch.engine import SearchEngine
from videosearch.policy.format import REFINE_TOKEN, TAG_TOKENS
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


def _policy(lm: Qwen3VLForConditionalGeneration, tokenizer: object, device: str, dtype: torch.dtype,
            max_new_tokens: int) -> Policy:
    """A paper policy on `lm` with a random (non-zero) SQR head; no LoRA, as the paper fine-tunes in full."""
    vision = QwenVision(lm.config)
    tokens = [REFINE_TOKEN, *TAG_TOKENS, *vision.extra_tokens]
    _add_tokens(lm, tokenizer, tokens)
    lm = lm.to(device, dtype).eval()
    hidden = lm.config.text_config.hidden_size
    sqr = SQRHead(hidden, hidden, hidden).to(device, dtype)
    torch.nn.init.normal_(sqr.refine_projector[3].weight, std=0.02)
    config = PolicyConfig(preset="paper", extra_tokens=tokens, max_new_tokens=max_new_tokens)
    return Policy(config, lm, tokenizer, vision, sqr)


def refinement_speed(policy: Policy, video: VideoFrames) -> dict[str, float]:
    """Seconds of SQR on the cache, SQR the reference's way and HQR, each after the turn's prefill."""
    lm = policy.lm
    prompt = policy._prompt("the person opens the fridge after washing the dishes", video, "sqr")
    ids, mask = policy._tokenize([prompt])
    ids = torch.cat([ids, torch.full((1, 1), policy.refine_id, device=ids.device)], dim=1)
    mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    embed = lm.get_input_embeddings()

    def prefill() -> tuple:
        return policy.vision.prefill(lm, ids, mask, [video])

    def sqr_cached() -> torch.Tensor:
        cache, last, _ = prefill()
        return rollout_latents(policy.vision.step_fn(lm, cache), policy.sqr, last, mask, 8)

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
    result = {"prompt_tokens": int(ids.shape[1]), "prefill_s": round(prefill_s, 4),
              "sqr_cached_8_latents_s": round(_timed(sqr_cached) - prefill_s, 4),
              "sqr_reference_7_reprefills_s": round(_timed(sqr_reference) - prefill_s, 4),
              "hqr_27_tokens_s": round(_timed(hqr_tokens) - prefill_s, 4)}
    result["sqr_speedup_vs_reference"] = round(result["sqr_reference_7_reprefills_s"] /
                                               result["sqr_cached_8_latents_s"], 2)
    result["sqr_speedup_vs_hqr"] = round(result["hqr_27_tokens_s"] / result["sqr_cached_8_latents_s"], 2)
    return result


def retriever_speed(embedder: Qwen3VLEmbedder, video: VideoFrames) -> dict[str, float]:
    """Queries/s at batch 32; videos/s and frames/s of one video, with its segment vectors and without."""
    queries = [f"the person opens the fridge after washing the dishes, take {i}" for i in range(64)]
    embedder.config.batch_size = 32
    result = {"queries_per_s": round(len(queries) / _timed(lambda: embedder.embed_text(queries), 2), 1)}
    for segments in (0, 8):
        embedder.config.segment_frames = segments
        seconds = _timed(lambda: embedder.embed_video([video]), 2)
        name = "with_segments" if segments else "whole_video_only"
        result[f"videos_per_s_{name}"] = round(1 / seconds, 3)
        result[f"frames_per_s_{name}"] = round(len(video) / seconds, 1)
    embedder.config.segment_frames = 0
    return result


def agent_speed(policy: Policy, embedder: Qwen3VLEmbedder, frames: np.ndarray, n_videos: int,
                batches: list[int], folder: Path) -> dict[str, float]:
    """Episodes/s of the SQR agent (3 turns) at each batch size, over an index of `n_videos` synthetic videos."""
    rng = np.random.default_rng(1)
    for i in range(n_videos):  # each its own: the frames shuffled, so that every video has its own vector
        write_video(folder / f"v{i:02d}.mp4", frames[rng.permutation(len(frames))], fps=1.0)
    engine, _ = SearchEngine.build(folder, embedder)
    moments = [Moment(str(i), f"the person opens the fridge after washing the dishes, take {i}",
                      f"v{i % n_videos:02d}", 2.0, 6.0, float(len(frames))) for i in range(max(batches))]
    result = {}
    for batch in batches:
        agent = Agent(engine, policy, AgentConfig(judge="policy", refine="sqr", max_turns=3, batch_size=batch))
        episodes = moments[:batch] if batch > 1 else moments[:2]
        list(agent.run(episodes[:1]))  # warm-up: frames decoded, kernels compiled
        _sync()
        began = time.perf_counter()
        list(agent.run(episodes))
        _sync()
        result[f"episodes_per_s_batch{batch}"] = round(len(episodes) / (time.perf_counter() - began), 3)
    best = max(result.values())
    result["agent_speedup_best_batch_vs_1"] = round(best / result["episodes_per_s_batch1"], 2)
    return result


def full_size_forward(policy: Policy, embedder: Qwen3VLEmbedder, video: VideoFrames) -> dict[str, float]:
    """Seconds of one policy prefill over the video and one embedder pass each for a query and the video."""
    prompt = policy._prompt("the person opens the fridge after washing the dishes", video, "sqr")
    ids, mask = policy._tokenize([prompt])
    return {"prompt_tokens": int(ids.shape[1]),
            "policy_prefill_s": round(_timed(lambda: policy.vision.prefill(policy.lm, ids, mask, [video]), 1), 2),
            "embed_query_s": round(_timed(lambda: embedder.embed_text(["the person opens the fridge"]), 1), 2),
            "embed_video_s": round(_timed(lambda: embedder.embed_video([video]), 1), 2)}


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="reduced size on a CPU: tiny model, 4 frames of 64x64")
    parser.add_argument("--cpu-2b", action="store_true", help="2B shapes on a CPU in fp32, 4 frames of 448x448: "
                        "one policy prefill and one embedder pass per input, timed (about 10 GB of memory)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--frames", type=int, default=0, help="frames of the turn's video (default: 64 on a GPU, "
                        "4 with --cpu or --cpu-2b)")
    args = parser.parse_args()
    began = time.perf_counter()
    torch.manual_seed(0)
    tokenizer = tiny_qwen3vl_tokenizer()
    device, dtype = ("cpu", torch.float32) if args.cpu or args.cpu_2b else ("cuda", torch.bfloat16)
    with torch.device(device):  # random init where the weights will live
        lm = tiny_qwen3vl(tokenizer) if args.cpu else qwen3vl_2b_shapes(tokenizer)
    policy = _policy(lm, tokenizer, device, dtype, max_new_tokens=32 if args.cpu else 64)
    n, side = (4, 64) if args.cpu else (4, 448) if args.cpu_2b else (64, 448)
    n = args.frames or n
    frames = np.random.default_rng(0).integers(0, 255, (n, side, side, 3), dtype=np.uint8)
    video = VideoFrames("v", frames, np.arange(n, dtype=np.float64), float(n))
    embedder = Qwen3VLEmbedder(policy.lm.model, copy.deepcopy(tokenizer), Qwen3VLEmbedderConfig(segment_frames=0))
    result: dict[str, object] = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                                 "dtype": str(dtype), "frames": n, "side": side,
                                 "parameters_b": round(sum(p.numel() for p in lm.parameters()) / 1e9, 2),
                                 "init_s": round(time.perf_counter() - began, 1)}
    if args.cpu_2b:
        result.update(full_size_forward(policy, embedder, video))
    else:
        result.update(refinement_speed(policy, video))
        result.update(retriever_speed(embedder, video))
        with tempfile.TemporaryDirectory() as folder:
            result.update(agent_speed(policy, embedder, frames, 6 if args.cpu else 16, args.batches, Path(folder)))
    result["wall_s"] = round(time.perf_counter() - began, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
