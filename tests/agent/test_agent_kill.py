"""`agent run` killed with SIGKILL at random moments and resumed: after every kill the predictions file holds
whole, valid, distinct predictions in the order of the queries (a cut last line is allowed), and the finished
file equals an uninterrupted run's but for the timing fields (`seconds`).

8 queries in batches of 2, SQR with 2 turns. The first kill lands in the start-up (a delay drawn over it), the
others at a random moment after a random number of written predictions: in a batch's episodes or between the
appends of its lines, however long the start-up takes.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import torch
from killing import kill_videosearch_after, kill_videosearch_when, run_videosearch
from test_agent_cli import predictions_without_seconds

from videosearch.corpus.annotations import read_moments
from videosearch.engine import SearchEngine
from videosearch.eval.predictions import read_predictions
from videosearch.policy.policy import Policy, PolicyConfig

pytestmark = pytest.mark.kill
QUERIES = 8


def _written(out: Path) -> list[str]:
    """The qids of the whole lines of `out`; read_predictions checks that each is valid and none repeats."""
    return [p.qid for p in read_predictions(out, allow_truncated_tail=True)] if out.exists() else []


def test_agent_run_survives_kills(engine: SearchEngine, small_world: Path, tmp_path: Path, kill_rounds: int) -> None:
    engine.save(tmp_path / "index")
    torch.manual_seed(0)
    Policy.create(PolicyConfig(preset="tiny-mini", max_new_tokens=6, n_latents=3), engine.embedder).save(
        tmp_path / "policy")
    annotations = tmp_path / "queries.jsonl"
    annotations.write_text("".join((small_world / "test.jsonl").read_text().splitlines(keepends=True)[:QUERIES]))
    qids = [m.qid for m in read_moments(annotations).moments]
    args = ["agent", "run", tmp_path / "index", "--annotations", annotations, "--checkpoint", tmp_path / "policy",
            "--refine", "sqr", "--max-turns", "2", "--batch-size", "2"]
    started = time.monotonic()
    run_videosearch(*args, "--out", tmp_path / "never_killed.jsonl")
    duration_s = time.monotonic() - started
    episodes_s = sum(j.seconds for p in read_predictions(tmp_path / "never_killed.jsonl") for j in p.judgements)
    batch_s = episodes_s / (QUERIES // 2)
    out = tmp_path / "killed.jsonl"
    rng = random.Random(5)
    report = []
    for i in range(kill_rounds):
        if i == 0:
            delay_s = rng.uniform(0, duration_s - episodes_s)
            finished = kill_videosearch_after(delay_s, *args, "--out", out)
            when = f"{delay_s:.1f} s"
        else:
            written = len(_written(out))
            after, extra_s = rng.randint(min(written + 1, QUERIES - 1), QUERIES - 1), rng.uniform(0, batch_s)
            finished = kill_videosearch_when(out, after, extra_s, *args, "--out", out)
            when = f"{extra_s:.2f} s after {after} predictions"
        done = _written(out)
        assert done == qids[: len(done)], "whole, valid, distinct predictions in the order of the queries"
        report.append(f"{when} ({'finished' if finished else f'{len(done)} written'})")
    run_videosearch(*args, "--out", out)
    assert predictions_without_seconds(out) == predictions_without_seconds(tmp_path / "never_killed.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["index", "policy", "queries.jsonl", "never_killed.jsonl", "killed.jsonl"]), "no temporary files left"
    print(f"agent run: uninterrupted {duration_s:.1f} s; kills at {'; '.join(report)}")
