from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from videosearch.agent import Agent, AgentConfig
from videosearch.corpus.annotations import read_moments
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.policy.policy import Policy, PolicyConfig


@pytest.fixture
def policy(engine: SearchEngine) -> Policy:
    torch.manual_seed(0)
    return Policy.create(PolicyConfig(preset="tiny-mini", max_new_tokens=6, n_latents=3), engine.embedder).eval()


@pytest.fixture
def moments(small_world: Path) -> list:
    return read_moments(small_world / "test.jsonl").moments[:5]


@pytest.mark.parametrize("mode", ["oneshot", "hqr", "sqr"])
def test_every_turn_is_recorded_and_judged_videos_are_not_shown_again(
        mode: str, engine: SearchEngine, policy: Policy, moments: list) -> None:
    predictions = list(Agent(engine, policy, AgentConfig(mode=mode, max_turns=3, batch_size=2)).run(moments))
    assert [p.qid for p in predictions] == [m.qid for m in moments]
    for prediction, moment in zip(predictions, moments):
        turns = prediction.judgements
        assert 1 <= len(turns) <= (1 if mode == "oneshot" else 3)
        assert len({t.video for t in turns}) == len(turns), "a judged video is excluded from later retrievals"
        assert turns[0].video == prediction.ranking_turn1[0]
        assert len(prediction.ranking_turn1) == len(engine)
        assert all(t.answer in ("matched", "not_matched", "unparsable") for t in turns)
        assert all(t.answer != "matched" for t in turns[:-1]), "an episode ends at its first match"
        assert all(0 < t.generated_tokens <= 6 and t.seconds > 0 for t in turns)
        assert turns[0].extra["gt_rank_before"] == prediction.ranking_turn1.index(moment.video_id) + 1
        for earlier, later in zip(turns, turns[1:]):
            assert earlier.latent_steps == (3 if mode == "sqr" else 0)
            assert earlier.extra["gt_rank_after"] is None or earlier.extra["gt_rank_after"] >= 1
        if len(turns) > 1:
            assert prediction.ranking[0] not in {t.video for t in turns[:-1]}
        if mode != "sqr":
            assert all(t.latent_steps == 0 for t in turns)


def test_without_exclusion_a_video_may_come_back(engine: SearchEngine, policy: Policy, moments: list) -> None:
    config = AgentConfig(mode="hqr", max_turns=2, exclude_judged=False)
    predictions = Agent(engine, policy, config).run_batch(moments)
    assert all(len(p.ranking) == len(engine) for p in predictions), "nothing is excluded from the rankings"


def test_bad_agent_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown mode"):
        AgentConfig(mode="magic")
    with pytest.raises(ConfigError, match="max_turns"):
        AgentConfig(max_turns=0)


def predictions_without_seconds(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        for judgement in record["judgements"]:
            judgement.pop("seconds")
    return records


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
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:3]) + lines[3][:40])  # an interruption in the middle of a line
    code, output, errors = run_cli(*args, "--out", cut)
    assert code == 0 and "3 were already there" in output, errors
    assert predictions_without_seconds(cut) == predictions_without_seconds(full)
    code, output, errors = run_cli(*[a if a != "sqr" else "hqr" for a in args], "--out", full)
    assert code == 2 and "holds sqr predictions" in errors and len(full.read_text().splitlines()) == 6


@pytest.fixture
def agent_inputs(engine: SearchEngine, policy: Policy, small_world: Path, tmp_path: Path) -> list[object]:
    """`agent run` arguments over a saved index and policy and the first 4 test queries, all but `--out`."""
    engine.save(tmp_path / "index")
    policy.save(tmp_path / "policy")
    annotations = tmp_path / "queries.jsonl"
    annotations.write_text("".join((small_world / "test.jsonl").read_text().splitlines(keepends=True)[:4]))
    return ["agent", "run", tmp_path / "index", "--annotations", annotations, "--checkpoint", tmp_path / "policy",
            "--mode", "oneshot", "--batch-size", "2"]


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
