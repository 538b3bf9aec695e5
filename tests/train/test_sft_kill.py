"""`train sft` killed with SIGKILL at random moments and resumed: after every kill the run folder holds a log
of whole, consecutive steps and loadable checkpoints; the finished run has every step logged once and the weights
of a run never killed.

The tiny preset trains 4 steps (2 epochs of 2 batches), a checkpoint every 2, so that the log runs ahead of the
checkpoint between saves. The first kill lands in the start-up (a delay drawn over it), the others at a random
moment of a random step still to come (in its compute, its log line or its save), however long the start-up takes.
A kill exactly between the two renames of a save is a window of microseconds: tests/train/test_sft.py stops a
save there.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
import torch
from killing import kill_videosearch_after, kill_videosearch_when, run_videosearch
from sft_testdata import checkpoint_weights

from videosearch.folders import aside_copies
from videosearch.train.checkpoints import STATE_FILE

pytestmark = pytest.mark.kill
STEPS = 4
SETTINGS = ("policy.preset=tiny-mini", "policy.n_latents=3", "policy.max_new_tokens=4", "policy.lora_dropout=0.5",
            "batch_size=2", "max_examples=4", "epochs=2", "save_every=2", "warmup_steps=1", "negatives=10")


def _logged_steps(out: Path) -> list[int]:
    """Steps of the log's whole lines; only the last line may be cut short, by the kill."""
    if not (out / "log.jsonl").exists():
        return []
    lines = (out / "log.jsonl").read_text().split("\n")
    return [json.loads(line)["step"] for line in lines[:-1]]


def _assert_valid_after_kill(out: Path) -> None:
    steps = _logged_steps(out)
    assert steps == list(range(1, len(steps) + 1)), f"log steps {steps}"
    for folder in (out / "last", *aside_copies(out / "last")):
        if (folder / STATE_FILE).exists():
            state = torch.load(folder / STATE_FILE, weights_only=True)
            assert 1 <= state["step"] <= len(steps), "a checkpoint is never ahead of the log"
            checkpoint_weights(folder)  # its weights load


def test_train_sft_survives_kills(sft_inputs: tuple[Path, Path], tmp_path: Path, kill_rounds: int) -> None:
    data, index = sft_inputs
    args = ["train", "sft", "--data", data, "--index", index, *(x for s in SETTINGS for x in ("-o", s))]
    started = time.monotonic()
    run_videosearch(*args, "--out", tmp_path / "never_killed")
    duration_s = time.monotonic() - started
    step_s = [json.loads(line)["seconds"] for line in (tmp_path / "never_killed" / "log.jsonl").read_text().split("\n")
              if line]
    startup_s = duration_s - sum(step_s)  # imports, loading, decoding and the saves
    out = tmp_path / "killed"
    rng = random.Random(11)
    report = []
    for i in range(kill_rounds):
        if i == 0:
            delay_s = rng.uniform(0, startup_s)
            finished = kill_videosearch_after(delay_s, *args, "--out", out)
            when = f"{delay_s:.1f} s"
        else:
            logged = len(_logged_steps(out))
            after, extra_s = rng.randint(min(logged + 1, STEPS - 1), STEPS - 1), rng.uniform(0, max(step_s))
            finished = kill_videosearch_when(out / "log.jsonl", after, extra_s, *args, "--out", out)
            when = f"{extra_s:.1f} s after step {after}"
        _assert_valid_after_kill(out)
        report.append(f"{when} ({'finished' if finished else f'{len(_logged_steps(out))} steps logged'})")
    run_videosearch(*args, "--out", out)
    assert _logged_steps(out) == list(range(1, STEPS + 1))
    reference, resumed = checkpoint_weights(tmp_path / "never_killed" / "final"), checkpoint_weights(out / "final")
    assert reference.keys() == resumed.keys()
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=1e-5, atol=1e-6, msg=name)
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "final", "last", "log.jsonl"], "no leftovers"
    print(f"train sft: uninterrupted {duration_s:.1f} s ({startup_s:.1f} s start-up); kills {'; '.join(report)}")
