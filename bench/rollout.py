"""SQR latent rollout on the KV cache vs the reference's way (re-running the whole prompt at every latent step).

Run: `python bench/rollout.py [--preset mini|tiny-mini] [--batch 1 8] [--frames 21]`. The mini policy (SmolLM2-135M,
LoRA merged, random SQR head) sees one turn's prompt with `--frames` video frames; both ways roll out N = 8
latents from the same state (after the turn's prefill, which both need once), and the results must agree.
Also times HQR's way, 27 greedy text tokens on the cache.
Prints one JSON line: seconds of each way and the speed-up, per batch size.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from videosearch.corpus.types import VideoFrames
from videosearch.embed.mini import MiniEmbedder
from videosearch.policy.policy import Policy, PolicyConfig
from videosearch.policy.rollout import rollout_latents, rollout_latents_recomputed


def _best_of(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mini", choices=["mini", "tiny-mini"])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--frames", type=int, default=21, help="frames per video (the world's videos have ~21)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    embedder = MiniEmbedder()
    policy = Policy.create(PolicyConfig(preset=args.preset), embedder, lora=False).eval()
    torch.nn.init.normal_(policy.sqr.refine_projector[3].weight, std=0.02)  # non-zero latents to compare
    rng = np.random.default_rng(0)
    results: dict[str, object] = {"preset": args.preset, "frames": args.frames, "n_latents": policy.config.n_latents,
                                  "threads": torch.get_num_threads()}
    for batch in args.batch:
        videos = [VideoFrames(f"v{i}", rng.integers(0, 255, (args.frames, 32, 32, 3), dtype=np.uint8),
                              np.arange(args.frames, dtype=np.float32), float(args.frames)) for i in range(batch)]
        prompts = [policy._prompt("the small red circle moves left after the blue square grows", v, "sqr")
                   for v in videos]
        ids, mask = policy._tokenize(prompts)
        ids = torch.cat([ids, torch.full((batch, 1), policy.refine_id)], dim=1)  # the turn ends at <REFINE>
        mask = torch.cat([mask, torch.ones(batch, 1, dtype=mask.dtype)], dim=1)
        with torch.no_grad():
            embeds = policy.vision._embed(policy.lm, ids, videos)

            def cached() -> torch.Tensor:
                cache, hidden, _ = policy.vision.prefill(policy.lm, ids, mask, videos)
                return rollout_latents(policy.vision.step_fn(policy.lm, cache), policy.sqr, hidden, mask,
                                       policy.config.n_latents)

            def recomputed() -> torch.Tensor:
                return rollout_latents_recomputed(policy.lm, policy.sqr, embeds, mask, policy.config.n_latents)

            def prefill_only() -> object:
                return policy.vision.prefill(policy.lm, ids, mask, videos)

            def hqr_text() -> None:
                cache, _, logits = policy.vision.prefill(policy.lm, ids, mask, videos)
                step_mask = mask
                for _ in range(27):
                    step_mask = torch.cat([step_mask, torch.ones(batch, 1, dtype=mask.dtype)], dim=1)
                    token = logits[:, -1].argmax(-1)
                    token_embeds = policy.lm.get_input_embeddings()(token)[:, None]
                    _, step_logits = policy.vision.step(policy.lm, cache, token_embeds, step_mask)
                    logits = step_logits[:, None]

            difference = float((cached() - recomputed()).abs().max())
            prefill_s = _best_of(prefill_only, args.repeats)
            cached_s = _best_of(cached, args.repeats) - prefill_s
            recomputed_s = _best_of(recomputed, args.repeats) - prefill_s  # both after the turn's own prefill
            hqr_s = _best_of(hqr_text, args.repeats) - prefill_s
        results[f"batch{batch}"] = {
            "prompt_tokens": int(ids.shape[1]), "prefill_s": round(prefill_s, 4),
            "sqr_cached_s": round(cached_s, 4), "sqr_recomputed_s": round(recomputed_s, 4),
            "speedup": round(recomputed_s / cached_s, 2), "hqr_27_tokens_s": round(hqr_s, 4),
            "max_abs_difference": difference}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
