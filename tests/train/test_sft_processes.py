"""SFT on two CPU processes (torchrun, gloo on loopback) takes the steps one process takes on the same data."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from launcher import run_processes
from sft_testdata import checkpoint_weights

PRESET = {"sft": {"policy": {"preset": "tiny-mini", "n_latents": 3, "max_new_tokens": 4, "lora_dropout": 0.0},
                  "batch_size": 4, "epochs": 2, "max_examples": 6, "warmup_steps": 1, "save_every": 100,
                  "negatives": 10, "infonce_weight": 0.0, "lr": 0.01, "heads_lr": 0.01}}


def test_two_processes_end_with_the_weights_of_one(sft_inputs: tuple[Path, Path], tmp_path: Path) -> None:
    data, index = sft_inputs
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump(PRESET))
    common = ["--config", str(preset), "--data", str(data), "--index", str(index)]
    run_processes(["train", "sft", *common, "--out", str(tmp_path / "one")], 1)
    # each rank checks that all ranks end with the same weights
    run_processes(["train", "sft", *common, "--out", str(tmp_path / "two")], 2)
    one, two = checkpoint_weights(tmp_path / "one" / "final"), checkpoint_weights(tmp_path / "two" / "final")
    assert one.keys() == two.keys()
    # halves of a batch pad differently, so the gradients differ in the last bits, and Adam scales a near-zero
    # gradient's noise up to a step of lr: compare each tensor as a whole
    for key, value in one.items():
        assert (two[key] - value).norm() <= 1e-2 * value.norm() + 1e-6, key
    assert any(value.abs().sum() > 0 for value in one.values())
    logs = [[json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
            for run in ("one", "two")]
    assert [r["step"] for r in logs[0]] == [r["step"] for r in logs[1]] == [1, 2, 3, 4]
    for a, b in zip(*logs):  # the logged CE is the whole batch's in both runs
        assert abs(a["ce"] - b["ce"]) < 1e-2 * max(a["ce"], 1e-3)
