"""CLIP-family retriever speed on this machine: frames embedded per second at real ViT-B shapes (random weights).

Run: `python bench/clip_frames.py [--families clip siglip] [--frames 64] [--batch 1 32]`. Each family is built at
its released base shape (CLIP ViT-B/32 at 224 px, SigLIP ViT-B/16 at 224 px) with random weights, which cost the
same as trained ones. It embeds `--frames` frames of one video at each `--batch` (frames per image-tower pass) and
64 queries, and prints one JSON line: frames/s per batch size, the batch speed-up, queries/s.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from videosearch.embed.clip import ClipEmbedder, ClipEmbedderConfig, save_random_clip


def _best_of(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["clip", "siglip"], choices=["clip", "siglip"])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--size", default="base", choices=["base", "tiny"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, 240, 320, 3), dtype=np.uint8)
    queries = [f"the small red circle moves to the left after the blue square grows, take {i}" for i in range(64)]
    results: dict[str, object] = {"frames": args.frames, "size": args.size, "threads": torch.get_num_threads()}
    for family in args.families:
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = save_random_clip(folder, family, args.size)
            row: dict[str, float] = {}
            for batch in args.batch:
                embedder = ClipEmbedder.from_pretrained(checkpoint, ClipEmbedderConfig(frame_batch=batch))
                seconds = _best_of(lambda: embedder.embed_frames(frames), args.repeats)
                row[f"frames_per_s_batch{batch}"] = round(args.frames / seconds, 2)
            seconds = _best_of(lambda: embedder.embed_text(queries), args.repeats)
            row["queries_per_s"] = round(len(queries) / seconds, 1)
        first, last = args.batch[0], args.batch[-1]
        row[f"speedup_batch{last}_vs_{first}"] = round(row[f"frames_per_s_batch{last}"] /
                                                       row[f"frames_per_s_batch{first}"], 2)
        results[family] = row
    print(json.dumps(results))


if __name__ == "__main__":
    main()
