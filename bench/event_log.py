"""How far the frame encoder's event log goes: a reader that checks each query's claim against it, word for word.

Run:
    .venv/bin/python bench/event_log.py --world runs/world --index runs/index_val --frame-encoder runs/frame_encoder

For each query of `--split` (val by default, held out from every training stage), the ground-truth video and the
index's top `--wrong` wrong videos are logged by the encoder (`policy.event_log`); a rule then accepts a video when
an entry matches the claim's scene, actor (shape, colour, size when named), event and, when the claim has one, an
entry of the other actor on the right side in time. That is a verdict with no learning in it: where the policy's
verdict stands against it says whether the LM reads the log or the log holds the LM back. The span of the
matching entry against the truth gives the same bound for grounding.
Progress goes to stderr; one JSON line of results goes to stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from videosearch.corpus.annotations import read_moments
from videosearch.corpus.video import read_frames
from videosearch.corpus.world_queries import Claim
from videosearch.engine import SearchEngine
from videosearch.eval.metrics import temporal_iou
from videosearch.policy.event_log import LogEntry, matching_entry, read_clip
from videosearch.policy.frame_encoder import FrameEncoder
from videosearch.progress import track


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("runs/world"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--index", type=Path, default=Path("runs/index_val"), help="an index of the same split")
    parser.add_argument("--frame-encoder", type=Path, default=Path("runs/frame_encoder"))
    parser.add_argument("--wrong", type=int, default=3, help="wrong videos per query, from the top of the ranking")
    parser.add_argument("--limit", type=int, default=0, help="the first N queries only (0 = all)")
    args = parser.parse_args()
    encoder = FrameEncoder.from_pretrained(args.frame_encoder)
    engine = SearchEngine.load(args.index)
    size = encoder.config.frame_size
    rows = [json.loads(line) for line in (args.world / f"{args.split}.jsonl").read_text().splitlines()]
    claims = {str(row["desc_id"]): row["claim"] for row in rows}
    moments = read_moments(args.world / f"{args.split}.jsonl").moments[: args.limit or None]
    logs: dict[str, tuple[str, list[LogEntry]]] = {}

    def log_of(video_id: str) -> tuple[str, list[LogEntry]]:
        if video_id not in logs:
            video = read_frames(args.world / "videos" / args.split / f"{video_id}.mp4", fps=1.0, size=(size, size))
            logs[video_id] = read_clip(encoder, video)
        return logs[video_id]

    accepted, rejected, wrong, ious = 0, 0, 0, []
    for moment in track(moments, "reading the event logs"):
        claim = Claim.from_dict(claims[moment.qid])
        ranked = [h.video_id for h in engine.search(moment.query, k=args.wrong + 1)]
        entry = matching_entry(claim, *log_of(moment.video_id))
        if entry is not None:
            accepted += 1
            ious.append(temporal_iou((entry.start_s, entry.end_s), (moment.start_s, moment.end_s)))
        for video_id in [v for v in ranked if v != moment.video_id][: args.wrong]:
            wrong += 1
            rejected += matching_entry(claim, *log_of(video_id)) is None
    positive, negative = 100 * accepted / len(moments), 100 * rejected / max(wrong, 1)
    print(json.dumps({"split": args.split, "queries": len(moments), "wrong_videos": wrong,
                      "truth_accepted_pct": round(positive, 1), "wrong_rejected_pct": round(negative, 1),
                      "balanced_accuracy": round((positive + negative) / 2, 1),
                      "iou_ge_0.5_of_accepted_pct": round(100 * float(np.mean(np.array(ious) >= 0.5)), 1)
                      if ious else None}))


if __name__ == "__main__":
    main()
