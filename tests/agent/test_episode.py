from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from videosearch.agent import Agent, AgentConfig
from videosearch.corpus.annotations import read_moments
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.eval.metrics import verification_accuracy
from videosearch.eval.predictions import Prediction
from videosearch.eval.turns import truncate_episode
from videosearch.policy.policy import Policy

SETTINGS = [("policy", "sqr", 1), ("policy", "none", 3), ("policy", "hqr", 3), ("policy", "sqr", 3),
            ("oracle", "oracle", 2)]


@pytest.mark.parametrize("judge,refine,max_turns", SETTINGS)
def test_every_turn_is_recorded_and_judged_videos_are_not_shown_again(
        judge: str, refine: str, max_turns: int, engine: SearchEngine, policy: Policy, moments: list) -> None:
    policy.config.max_new_tokens = 16 if judge == "oracle" else 6  # the tiny tokenizer spells "not_matched" out
    config = AgentConfig(judge=judge, refine=refine, max_turns=max_turns, batch_size=2, oracle_steps=2)
    predictions = list(Agent(engine, policy, config).run(moments))
    assert [p.qid for p in predictions] == [m.qid for m in moments]
    for prediction, moment in zip(predictions, moments):
        assert prediction.extra == {"judge": judge, "refine": refine, "max_turns": max_turns}
        turns = prediction.judgements
        assert 1 <= len(turns) <= max_turns
        assert len({t.video for t in turns}) == len(turns), "a judged video is excluded from later retrievals"
        assert turns[0].video == prediction.ranking_turn1[0]
        assert len(prediction.ranking_turn1) == len(engine)
        assert all(t.answer in ("matched", "not_matched", "unparsable") for t in turns)
        assert all(t.answer != "matched" for t in turns[:-1]), "an episode ends at its first match"
        assert all(0 < t.generated_tokens <= policy.config.max_new_tokens and t.seconds > 0 for t in turns)
        assert all(0.0 <= t.extra["match_prob"] <= 1.0 and round(t.extra["match_prob"], 4) == t.extra["match_prob"]
                   for t in turns)
        assert turns[0].extra["gt_rank_before"] == prediction.ranking_turn1.index(moment.video_id) + 1
        for earlier, later in zip(turns, turns[1:]):
            assert earlier.latent_steps == (3 if refine == "sqr" else 0)
            assert earlier.extra["gt_rank_after"] == later.extra["gt_rank_before"]
            assert later.video == earlier.extra["ranking_after"][0]
        assert turns[-1].latent_steps == 0 and turns[-1].extra["gt_rank_after"] is None
        assert "ranking_after" not in turns[-1].extra
        if len(turns) > 1:
            assert prediction.ranking[0] == turns[-1].video
            assert prediction.ranking[0] not in {t.video for t in turns[:-1]}
        assert ("rewrite" in turns[0].extra) == (refine == "hqr" and len(turns) > 1)


def test_the_oracle_judge_is_always_right_and_stops_at_the_ground_truth(
        engine: SearchEngine, policy: Policy, moments: list) -> None:
    policy.config.max_new_tokens = 16  # room for the forced verdict, spelled out by the tiny tokenizer
    predictions = Agent(engine, policy, AgentConfig(judge="oracle", refine="none", max_turns=3)).run_batch(moments)
    judgements = [(j, m.video_id) for p, m in zip(predictions, moments) for j in p.judgements]
    assert 100 * verification_accuracy([j.answer for j, _ in judgements], [j.video for j, _ in judgements],
                                       [gt for _, gt in judgements]) == 100.0
    for prediction, moment in zip(predictions, moments):
        videos = [j.video for j in prediction.judgements]
        if moment.video_id in prediction.ranking_turn1[:3]:
            assert videos[-1] == moment.video_id and prediction.judgements[-1].answer == "matched"
        else:
            assert len(videos) == 3 and moment.video_id not in videos


def test_refine_none_walks_down_the_first_ranking(engine: SearchEngine, policy: Policy, moments: list) -> None:
    policy.config.verdict_threshold = 1.0  # the policy's judge rejects every video
    predictions = Agent(engine, policy, AgentConfig(judge="policy", refine="none", max_turns=3)).run_batch(moments)
    for prediction in predictions:
        judged: list[str] = []
        for judgement in prediction.judgements[:-1]:
            judged.append(judgement.video)
            assert judgement.extra["ranking_after"] == [v for v in prediction.ranking_turn1 if v not in judged]
        assert [j.video for j in prediction.judgements] == prediction.ranking_turn1[:3]


def test_oracle_latents_raise_the_ground_truth(engine: SearchEngine, policy: Policy, small_world: Path) -> None:
    moments = read_moments(small_world / "test.jsonl").moments[:8]
    policy.config.max_new_tokens = 16  # room for the forced verdict, spelled out by the tiny tokenizer
    config = AgentConfig(judge="oracle", refine="oracle", max_turns=2, batch_size=8, oracle_steps=10)
    refined = [j for p in Agent(engine, policy, config).run_batch(moments) for j in p.judgements[:-1]]
    before = np.array([j.extra["gt_rank_before"] - 1 for j in refined])  # the shown wrong video leaves the ranking
    after = np.array([j.extra["gt_rank_after"] for j in refined])
    assert len(refined) >= 4, "most first videos of the tiny world are wrong"
    assert after.mean() <= before.mean() - 1.0 and (after < before).mean() >= 0.5, (before, after)


@pytest.mark.parametrize("judge,refine", [("oracle", "sqr"), ("oracle", "hqr"), ("policy", "none")])
def test_an_episode_cut_at_turn_t_is_the_t_turn_run(judge: str, refine: str, engine: SearchEngine, policy: Policy,
                                                     moments: list) -> None:
    def run(max_turns: int) -> list[Prediction]:
        config = AgentConfig(judge=judge, refine=refine, max_turns=max_turns, batch_size=5)
        return Agent(engine, policy, config).run_batch(moments)

    policy.config.verdict_threshold = 0.9  # the policy's judge rejects some videos
    three = run(3)
    assert any(len(p.judgements) == 3 for p in three)
    for turns in (1, 2):
        assert [without_seconds(truncate_episode(p, turns)) for p in three] == [without_seconds(p) for p in run(turns)]


def without_seconds(prediction: Prediction) -> dict:
    record = prediction.to_dict()
    for judgement in record["judgements"]:
        judgement.pop("seconds")
    return record


def test_without_exclusion_a_video_may_come_back(engine: SearchEngine, policy: Policy, moments: list) -> None:
    config = AgentConfig(refine="hqr", max_turns=2, exclude_judged=False)
    predictions = Agent(engine, policy, config).run_batch(moments)
    assert all(len(p.ranking) == len(engine) for p in predictions), "nothing is excluded from the rankings"


def test_bad_agent_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown judge"):
        AgentConfig(judge="magic")
    with pytest.raises(ConfigError, match="unknown refine"):
        AgentConfig(refine="latent")
    with pytest.raises(ConfigError, match="max_turns"):
        AgentConfig(max_turns=0)
    with pytest.raises(ConfigError, match="exclude"):
        AgentConfig(refine="none", exclude_judged=False)
