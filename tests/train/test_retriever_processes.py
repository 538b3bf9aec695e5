"""Retriever training on two CPU processes (torchrun, gloo on loopback) takes the steps one process takes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from launcher import run_processes
from safetensors.torch import load_file

from videosearch.corpus.video import read_frames
from videosearch.embed import load_embedder

# no dropout, so that the two runs see the same network; batches of an odd size split unevenly
OVERRIDES = ["epochs=2", "batch_videos=7", "eval_every=2", "lr=0.003", "video_tower.dropout=0",
             "video_tower.layers=1", "video_tower.channels=[8,16,16]", "video_tower.feature_dim=64"]


def test_two_processes_end_with_the_weights_of_one(small_world: Path, tmp_path: Path) -> None:
    common = ["retriever", "train", "--world", str(small_world), *[a for o in OVERRIDES for a in ("-o", o)]]
    run_processes([*common, "--out", str(tmp_path / "one")], 1)
    run_processes([*common, "--out", str(tmp_path / "two")], 2)  # each rank checks that all ranks end alike
    one, two = (load_file(next((tmp_path / run).glob("*.safetensors"))) for run in ("one", "two"))
    assert one.keys() == two.keys() and one
    flat_one, flat_two = (torch.cat([w[k].flatten() for k in sorted(w)]) for w in (one, two))
    # Adam scales the last-bit noise of a gradient that is zero by construction (attention's key bias) up to a
    # step of lr, so compare all weights as one, and the embedders by what they compute
    assert (flat_two - flat_one).norm() <= 1e-2 * flat_one.norm()
    videos = [read_frames(p, 1.0, 64, (32, 32)) for p in sorted((small_world / "videos" / "val").glob("*.mp4"))[:6]]
    vectors = [np.stack([e.vector for e in load_embedder(tmp_path / run).embed_video(videos)])
               for run in ("one", "two")]
    assert np.abs(vectors[0] - vectors[1]).max() < 1e-3
    logs = [json.loads((tmp_path / run / "train_log.json").read_text())["history"] for run in ("one", "two")]
    assert [e["epoch"] for e in logs[0]] == [e["epoch"] for e in logs[1]] == [1, 2]
    for a, b in zip(*logs):  # the logged loss is the whole batch's in both runs, and it falls
        assert abs(a["loss"] - b["loss"]) < 1e-3 * a["loss"]
    assert logs[0][1]["loss"] < logs[0][0]["loss"] and "val_R@1" in logs[1][1]
