"""GRPO's rewards on hand-made episodes: each term, and their weighted sum."""

from __future__ import annotations

import pytest

from videosearch.corpus.types import Moment
from videosearch.policy.format import format_output, parse_output
from videosearch.train.rewards import NOT_MATCHED_IOU, RewardWeights, SampledEpisode, SampledTurn

MOMENT = Moment("q1", "a red circle jumps", "gt", 2.0, 6.0, 20.0)


def _turn(video: str, matched: bool, span: tuple[float, float] | None = None, gain: float | None = None,
          text: str | None = None) -> SampledTurn:
    return SampledTurn(video, parse_output(text or format_output("why", matched, span)), gain)


def test_a_right_match_scores_its_iou() -> None:
    episode = SampledEpisode(MOMENT, [_turn("gt", True, (2.0, 4.0))])
    total, terms = RewardWeights().score(episode)
    assert terms == {"answer": 1.0, "think": 1.0, "time": 1.0, "iou": pytest.approx(0.5), "refine": 1.0,
                     "refine_quality": 0.0}
    assert total == pytest.approx(1.6 + 0.05 + 0.05 + 0.35 * 0.5 + 0.10)


def test_a_wrong_verdict_scores_minus_one_and_no_iou() -> None:
    for turn in (_turn("gt", False), _turn("other", True, (2.0, 6.0)), _turn("gt", True, text="<answer>maybe")):
        _, terms = RewardWeights().score(SampledEpisode(MOMENT, [turn]))
        assert terms["answer"] == -1.0 and terms["iou"] == 0.0


def test_a_right_rejection_scores_the_not_matched_iou_and_its_refinement() -> None:
    _, terms = RewardWeights().score(SampledEpisode(MOMENT, [_turn("other", False, gain=0.25)]))
    assert terms["answer"] == 1.0 and terms["iou"] == NOT_MATCHED_IOU and terms["refine_quality"] == 0.25


def test_several_turns_are_right_when_the_episode_ends_on_the_ground_truth() -> None:
    found = SampledEpisode(MOMENT, [_turn("other", False, gain=0.5), _turn("gt", True, (2.0, 6.0))], "gt")
    _, terms = RewardWeights().score(found)
    assert terms["answer"] == 1.0 and terms["iou"] == 1.0 and terms["refine_quality"] == 0.5
    # two right rejections whose refined search ranks the ground truth first: right, with no span to score
    searched = SampledEpisode(MOMENT, [_turn("a", False, gain=0.2), _turn("b", False, gain=0.4)], "gt")
    _, terms = RewardWeights().score(searched)
    assert terms["answer"] == 1.0 and terms["iou"] == NOT_MATCHED_IOU
    # every verdict right but nothing found: wrong (one turn would have scored it right)
    _, terms = RewardWeights().score(SampledEpisode(MOMENT, searched.turns, "c"))
    assert terms["answer"] == -1.0 and terms["iou"] == 0.0
    assert RewardWeights().score(SampledEpisode(MOMENT, searched.turns[:1]))[1]["answer"] == 1.0
    missed = SampledEpisode(MOMENT, [_turn("gt", False, gain=0.1), _turn("other", False, gain=-0.3)], "")
    _, terms = RewardWeights().score(missed)
    assert terms["answer"] == -1.0 and terms["refine_quality"] == pytest.approx(-0.1)


def test_format_terms_are_shares_of_turns() -> None:
    no_think = "<answer>matched</answer><start>1.0</start><end>3.0</end>"
    episode = SampledEpisode(MOMENT, [_turn("other", False), _turn("gt", True, text=no_think)])
    _, terms = RewardWeights().score(episode)
    assert terms["think"] == 0.5 and terms["refine"] == 0.5 and terms["time"] == 1.0
    reversed_span = SampledEpisode(MOMENT, [_turn("gt", True, (6.0, 2.0))])
    assert RewardWeights().score(reversed_span)[1]["time"] == 0.0


def test_weights_scale_their_terms() -> None:
    episode = SampledEpisode(MOMENT, [_turn("gt", True, (2.0, 6.0))])
    weights = RewardWeights(answer=1.0, think=0.0, time=0.0, iou=2.0, refine=0.0, refine_quality=0.0)
    assert weights.score(episode)[0] == pytest.approx(3.0)
