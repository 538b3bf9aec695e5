"""SFT on two CPU processes (torchrun, gloo on loopback) takes the steps one process takes on the same data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml
from sft_testdata import checkpoint_weights

PRESET = {"sft": {"policy": {"preset": "tiny-mini", "n_latents": 3, "max_new_tokens": 4, "lora_dropout": 0.0},
                  "batch_size": 4, "epochs": 2, "max_examples": 6, "warmup_steps": 1, "save_every": 100,
                  "negatives": 10, "infonce_weight": 0.0, "lr": 0.01, "heads_lr": 0.01}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sft(args: list[str], processes: int) -> None:
    cli = str(Path(sys.executable).with_name("videosearch"))
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                 "--master_addr", "127.0.0.1", "--master_port", str(_free_port())] if processes > 1 else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, cli, "train", "sft", *args], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_end_with_the_weights_of_one(sft_inputs: tuple[Path, Path], tmp_path: Path) -> None:
    data, index = sft_inputs
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump(PRESET))
    common = ["--config", str(preset), "--data", str(data), "--index", str(index)]
    _sft([*common, "--out", str(tmp_path / "one")], 1)
    _sft([*common, "--out", str(tmp_path / "two")], 2)  # each rank checks that all ranks end with the same weights
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
