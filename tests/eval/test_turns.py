"""truncate_episode: a 3-turn episode cut at turn t is what a t-turn run writes (hand-built episodes)."""

from __future__ import annotations

import pytest

from videosearch.errors import VideosearchError
from videosearch.eval.predictions import Judgement, Prediction
from videosearch.eval.turns import truncate_episode


def _turn(video: str, answer: str, rank_before: int, rank_after: int | None, ranking_after: list[str] | None,
          latent_steps: int = 8) -> Judgement:
    extra: dict = {"text": "...", "match_prob": 0.25, "gt_rank_before": rank_before, "gt_rank_after": rank_after}
    if ranking_after is not None:
        extra.update(ranking_after=ranking_after, rewrite="another query")
    return Judgement(video=video, answer=answer, span=(1.0, 2.0) if answer == "matched" else None,
                     generated_tokens=10, latent_steps=latent_steps if ranking_after is not None else 0, seconds=0.5,
                     extra=extra)


EPISODE = Prediction(
    qid="q1", query="the red circle", ranking_turn1=["a", "b", "gt", "c"], ranking=["gt", "c"],
    judgements=[_turn("a", "not_matched", 3, 2, ["b", "gt", "c"]), _turn("b", "not_matched", 2, 1, ["gt", "c"]),
                _turn("gt", "matched", 1, None, None)],
    extra={"judge": "policy", "refine": "hqr", "max_turns": 3})


def test_cut_at_one_turn_is_the_one_shot_run() -> None:
    one = truncate_episode(EPISODE, 1)
    assert one.ranking == ["a", "b", "gt", "c"] and one.ranking_turn1 == EPISODE.ranking_turn1
    assert [j.video for j in one.judgements] == ["a"]
    assert one.judgements[0].latent_steps == 0
    assert one.judgements[0].extra == {"text": "...", "match_prob": 0.25, "gt_rank_before": 3, "gt_rank_after": None}
    assert one.extra == {"judge": "policy", "refine": "hqr", "max_turns": 1}


def test_cut_at_two_turns_ends_with_the_ranking_the_second_turn_was_shown() -> None:
    two = truncate_episode(EPISODE, 2)
    assert two.ranking == ["b", "gt", "c"]
    assert [j.video for j in two.judgements] == ["a", "b"]
    assert two.judgements[0] == EPISODE.judgements[0], "the turns before the cut are kept as they are"
    assert two.judgements[1].latent_steps == 0 and two.judgements[1].extra["gt_rank_after"] is None
    assert "ranking_after" not in two.judgements[1].extra and "rewrite" not in two.judgements[1].extra
    assert two.extra["max_turns"] == 2


def test_a_cut_at_or_after_the_last_turn_keeps_the_episode() -> None:
    for turns in (3, 5):
        same = truncate_episode(EPISODE, turns)
        assert same.judgements == EPISODE.judgements and same.ranking == EPISODE.ranking
        assert same.extra["max_turns"] == turns
    assert EPISODE.extra["max_turns"] == 3 and len(EPISODE.judgements) == 3, "the input is not changed"
    assert "ranking_after" in EPISODE.judgements[1].extra


def test_a_cut_needs_the_ranking_of_the_turn_before() -> None:
    old = Prediction(qid="q2", query="q", ranking_turn1=["a", "gt"], ranking=["gt"],
                     judgements=[_turn("a", "not_matched", 2, 1, None), _turn("gt", "not_matched", 1, 1, None),
                                 _turn("c", "not_matched", 1, None, None)])
    assert truncate_episode(old, 1).ranking == ["a", "gt"]
    with pytest.raises(VideosearchError, match="records no 'ranking_after'"):
        truncate_episode(old, 2)
    with pytest.raises(ValueError, match="turns must be >= 1"):
        truncate_episode(old, 0)
