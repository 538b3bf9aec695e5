"""`videosearch agent run`: settings flags, resuming, refusing other files, the shipped policy as the default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videosearch import shipped
from videosearch.engine import SearchEngine
from videosearch.eval.predictions import read_predictions
from videosearch.policy.policy import Policy


def predictions_without_seconds(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        for judgement in record["judgements"]:
            judgement.pop("seconds")
    return records


@pytest.fixture
def inputs(engine: SearchEngine, policy: Policy, small_world: Path, tmp_path: Path) -> dict[str, Path]:
    """A saved index and policy and the first 4 test queries."""
    engine.save(tmp_path / "index")
    policy.save(tmp_path / "policy")
    annotations = tmp_path / "queries.jsonl"
    annotations.write_text("".join((small_world / "test.jsonl").read_text().splitlines(keepends=True)[:4]))
    return {"index": tmp_path / "index", "policy": tmp_path / "policy", "annotations": annotations}


@pytest.fixture
def agent_inputs(inputs: dict[str, Path]) -> list[object]:
    """`agent run` arguments over `inputs`, one-shot, all but `--out`."""
    return ["agent", "run", inputs["index"], "--annotations", inputs["annotations"], "--checkpoint", inputs["policy"],
            "--mode", "oneshot", "--batch-size", "2"]


def test_agent_run_resumes_after_an_interruption_and_ends_with_the_same_file(
        run_cli, engine: SearchEngine, policy: Policy, small_world: Path, tmp_path: Path) -> None:
    engine.save(tmp_path / "index")
    policy.save(tmp_path / "policy")
    annotations = tmp_path / "queries.jsonl"
    annotations.write_text("".join((small_world / "test.jsonl").read_text().splitlines(keepends=True)[:6]))
    args = ["agent", "run", tmp_path / "index", "--annotations", annotations, "--checkpoint", tmp_path / "policy",
            "--mode", "sqr", "--batch-size", "2"]
    full = tmp_path / "full.jsonl"
    code, output, errors = run_cli(*args, "--out", full)
    assert code == 0, errors
    lines = full.read_text().splitlines(keepends=True)
    assert len(lines) == 6
    assert all(p.extra == {"judge": "policy", "refine": "sqr", "max_turns": 3} for p in read_predictions(full))
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:3]) + lines[3][:40])  # an interruption in the middle of a line
    code, output, errors = run_cli(*args, "--out", cut)
    assert code == 0 and "3 were already there" in output, errors
    assert predictions_without_seconds(cut) == predictions_without_seconds(full)


@pytest.mark.parametrize("flags,setting", [
    (["--max-turns", "1", "--mode", "hqr"], "refine=sqr, this run has refine=hqr"),
    (["--max-turns", "1", "--refine", "none"], "refine=sqr, this run has refine=none"),
    (["--max-turns", "1", "--judge", "oracle"], "judge=policy, this run has judge=oracle"),
    (["--max-turns", "2"], "max_turns=1, this run has max_turns=2"),
])
def test_agent_run_refuses_to_resume_a_file_of_other_settings(run_cli, agent_inputs: list, tmp_path: Path,
                                                               flags: list[str], setting: str) -> None:
    out = tmp_path / "preds.jsonl"
    code, _, err = run_cli(*agent_inputs, "--out", out)
    assert code == 0, err
    before = out.read_text()
    code, _, err = run_cli(*[a for a in agent_inputs if a not in ("--mode", "oneshot")], *flags, "--out", out)
    message = " ".join(err.split())
    assert code == 2 and "Traceback" not in err and str(out) in message and setting in message, err
    assert out.read_text() == before


def test_agent_run_refuses_predictions_that_record_no_settings(run_cli, agent_inputs: list, tmp_path: Path) -> None:
    out = tmp_path / "old.jsonl"
    code, _, err = run_cli(*agent_inputs, "--out", out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    out.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "refine"}) + "\n" for r in records))
    code, _, err = run_cli(*agent_inputs, "--out", out)
    assert code == 2 and "do not record refine" in " ".join(err.split()), err


@pytest.mark.parametrize("flags,message", [
    (["--judge", "magic"], "unknown judge 'magic'"),
    (["--refine", "latent"], "unknown refine 'latent'"),
    (["--max-turns", "0"], "max_turns must be >= 1"),
    (["--mode", "twoshot"], "unknown --mode 'twoshot'"),
    (["--mode", "oneshot", "--max-turns", "3"], "--mode oneshot means --max-turns 1, but --max-turns 3"),
    (["--mode", "hqr", "--refine", "sqr"], "--mode hqr means --refine hqr, but --refine sqr"),
    (["--max-turns", "two"], "Invalid value for '--max-turns'"),
])
def test_bad_agent_flags_are_clear_errors(run_cli, inputs: dict[str, Path], tmp_path: Path, flags: list[str],
                                          message: str) -> None:
    code, _, err = run_cli("agent", "run", inputs["index"], "--annotations", inputs["annotations"], "--checkpoint",
                           inputs["policy"], "--out", tmp_path / "p.jsonl", *flags)
    assert code == 2 and "Traceback" not in err and message in " ".join(err.split()), err
    assert not (tmp_path / "p.jsonl").exists()


def test_mode_agrees_with_the_flags_it_stands_for(run_cli, inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    code, _, err = run_cli("agent", "run", inputs["index"], "--annotations", inputs["annotations"], "--checkpoint",
                           inputs["policy"], "--out", out, "--mode", "hqr", "--refine", "hqr", "--max-turns", "1",
                           "--judge", "oracle")
    assert code == 0, err
    assert {tuple(p.extra.items()) for p in read_predictions(out)} == {
        (("judge", "oracle"), ("refine", "hqr"), ("max_turns", 1))}


def test_agent_run_uses_the_shipped_policy(run_cli, inputs: dict[str, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    monkeypatch.setattr(shipped, "REPO_ROOT", repo)
    args = ["agent", "run", inputs["index"], "--annotations", inputs["annotations"], "--max-turns", "1"]
    code, _, err = run_cli(*args, "--out", tmp_path / "p.jsonl")
    message = " ".join(err.split())
    assert code == 2 and f"no shipped checkpoint at {repo / 'checkpoints' / 'mini' / 'policy'}" in message, err
    assert "--checkpoint" in message and "make train" in message
    (repo / "checkpoints" / "mini").mkdir(parents=True)
    inputs["policy"].rename(repo / "checkpoints" / "mini" / "policy")
    code, out, err = run_cli(*args, "--out", tmp_path / "p.jsonl")
    assert code == 0 and "wrote 4 predictions" in out, err


@pytest.mark.parametrize("text", ["my notes, no newline at the end", "my notes\n", "{not ours"])
def test_agent_run_never_replaces_a_file_that_is_not_predictions(run_cli, agent_inputs: list, tmp_path: Path,
                                                                  text: str) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text(text)
    code, _, err = run_cli(*agent_inputs, "--out", notes)
    assert code == 2 and "Traceback" not in err and str(notes) in err.strip().splitlines()[-1], err
    assert notes.read_text() == text


def test_agent_run_resumes_a_file_whose_first_line_a_kill_cut(run_cli, agent_inputs: list, tmp_path: Path) -> None:
    cut = tmp_path / "cut.jsonl"
    cut.write_text('{"qid": "2')
    code, output, err = run_cli(*agent_inputs, "--out", cut)
    assert code == 0 and "wrote 4 predictions" in output, err
    assert len(cut.read_text().splitlines()) == 4
