"""Episode transcripts: what each turn shows and says, at 80 columns, for agent and baseline files."""

import dataclasses
import re

import pytest
from rich.console import Console

from videosearch.corpus.types import Moment
from videosearch.errors import VideosearchError
from videosearch.eval.predictions import Judgement, Prediction
from videosearch.eval.transcript import find_episode, format_transcript, pick_query

QUERY = "the small orange circle leaves to the left after the large blue square grows and turns around twice"
MOMENT = Moment("q1", QUERY, "v_gt", 3.0, 7.0, 10.0)
REASONING = ("The video is in a kitchen while the query asks for a garden; a large green triangle stays in the "
             "middle of every frame and no orange circle appears at all, so this is not the video.")


def _agent_turn(video, answer, span, text, prob, before, after):
    extra = {"text": text, "match_prob": prob, "gt_rank_before": before, "gt_rank_after": after}
    return Judgement(video, answer, span, 40, 8 if after is not None else 0, 0.5, extra)


# Turn 1 rejects v_a (the ground truth at rank 3, 1 after the refinement); turn 2 matches v_gt with
# [3.2, 7.1] against [3, 7]: overlap 3.8, union 4.1, IoU 0.93. The texts are verdict-first and reasoning-first.
SQR = Prediction(
    "q1", QUERY, ["v_a", "v_b", "v_gt"], ["v_gt", "v_b"],
    [
        _agent_turn("v_a", "not_matched", None, f"<answer>not_matched</answer><think>{REASONING}</think><REFINE>",
                    0.12, 3, 1),
        _agent_turn("v_gt", "matched", (3.2, 7.1),
                    "<think>Garden; the circle leaves at 3 s.</think><answer>matched</answer>"
                    "<start>3.2</start><end>7.1</end>", 0.91, 1, None),
    ],
    {"judge": "policy", "refine": "sqr", "max_turns": 3},
)
# The search-only baseline: one judgement, no extras; the ground truth is at rank 3.
BASELINE = Prediction("q1", QUERY, ["v_a", "v_b", "v_gt"], ["v_a", "v_b", "v_gt"],
                      [Judgement("v_a", "matched", (0.0, 4.0), 0, 0, 0.01)])


def _render(renderable) -> str:
    console = Console(record=True, width=80)
    console.print(renderable)
    return console.export_text()


def _flat(text: str) -> str:
    """The rendered text with the wrapping undone (runs of whitespace made one space)."""
    return re.sub(r"\s+", " ", text)


def _assert_fits(text: str) -> None:
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_agent_episode_turn_by_turn():
    text = _render(format_transcript(SQR, MOMENT))
    _assert_fits(text)
    flat = _flat(text)
    assert "Query q1 · judge policy, refine sqr, at most 3 turns" in flat
    assert QUERY in flat and "ground truth v_gt, 3.0–7.0 s of 10.0 s" in flat
    turn1, rest = flat.split("Turn 2")
    assert "Turn 1 · v_a, not the ground truth" in turn1
    assert "verdict not_matched, P(matched) 0.12" in turn1 and "span" not in turn1
    assert f"reasoning {REASONING}" in turn1  # the <think> text, wrapped whole
    assert "<think>" not in flat and "output" not in flat
    assert "ground truth rank 3 → 1 after the refinement" in turn1
    turn2, final = rest.split("Final answer")
    assert "· v_gt, the ground truth" in turn2
    assert "verdict matched, P(matched) 0.91" in turn2 and "span 3.2–7.1 s" in turn2
    assert "reasoning Garden; the circle leaves at 3 s." in turn2
    assert "ground truth rank 1 " in turn2 and "→" not in turn2  # the last turn does not refine
    assert "answer matched on v_gt, the ground truth" in final
    assert "span 3.2–7.1 s against the ground truth's 3.0–7.0 s: IoU 0.93" in final
    assert "ground truth rank 1 in the final ranking" in final


def test_baseline_without_extras_shows_what_it_has():
    text = _render(format_transcript(BASELINE, MOMENT))
    _assert_fits(text)
    flat = _flat(text)
    assert "Query q1 ground truth" not in flat and "Turn 1 · v_a, not the ground truth" in flat
    assert "verdict matched span 0.0–4.0 s ground truth rank 3 " in flat  # turn 1's rank from ranking_turn1
    assert "P(matched)" not in flat and "reasoning" not in flat and "→" not in flat
    assert "span 0.0–4.0 s on the wrong video: a miss" in flat


def test_rejected_ground_truth_unparsable_output_and_rewrite():
    unparsable = Judgement("v_b", "unparsable", None, 12, 0, 0.5,
                           {"text": "<answer>maybe</answer>", "gt_rank_before": None, "gt_rank_after": None})
    rejected = _agent_turn("v_gt", "not_matched", None, "<answer>not_matched</answer><think>No.</think>",
                           0.4, 1, None)
    rejected.extra["rewrite"] = "an orange circle in a garden"
    episode = dataclasses.replace(SQR, ranking=["v_b"], judgements=[rejected, unparsable],
                                  extra={"judge": "policy", "refine": "hqr", "max_turns": 2})
    flat = _flat(_render(format_transcript(episode, MOMENT)))
    assert "rewritten an orange circle in a garden" in flat
    assert "rank 1 → left out of the ranking (rejected) after the refinement" in flat
    turn2 = flat.split("Turn 2")[1].split("Final answer")[0]
    assert "verdict unparsable" in turn2 and "output <answer>maybe</answer>" in turn2  # the raw text, not markup
    assert "left out of the ranking (rejected)" in turn2
    assert "answer unparsable on v_b, not the ground truth" in flat and "no moment answered: a miss" in flat
    assert "ground truth left out of the final ranking (rejected)" in flat


def test_long_ids_fold_and_odd_extras_are_ignored():
    long_id = "v" + "x" * 120
    odd = Judgement(long_id, "not_matched", None, 1, 0, 0.1, {"match_prob": 10**400, "text": 7})
    episode = Prediction("q1", QUERY, [long_id], [long_id], [odd])
    text = _render(format_transcript(episode, MOMENT))
    _assert_fits(text)
    assert long_id in _flat(text).replace(" ", "") and "P(matched)" not in text
    assert "ground truth not in the top 1 Final answer" in _flat(text)
    assert "ground truth not in the top 1 of the final ranking" in _flat(text)


def _episode(qid, videos, final_answer="matched"):
    judgements = [Judgement(v, "not_matched", None, 1, 0, 0.1) for v in videos[:-1]]
    judgements.append(Judgement(videos[-1], final_answer, (0.0, 1.0), 1, 0, 0.1))
    return Prediction(qid, f"query {qid}", list(videos), list(videos), judgements)


MOMENTS = [Moment(f"q{i}", f"query q{i}", "v_gt", 0.0, 1.0, 5.0) for i in range(1, 5)]


def test_pick_query_prefers_a_refined_episode_that_ended_on_the_ground_truth():
    one_turn = _episode("q1", ["v_gt"])
    refined_wrong = _episode("q2", ["v_a", "v_b"])
    refined_rejecting = _episode("q3", ["v_a", "v_gt"], final_answer="not_matched")
    refined_right = _episode("q4", ["v_a", "v_gt"])
    assert pick_query([one_turn, refined_wrong, refined_rejecting, refined_right], MOMENTS) == "q4"
    assert pick_query([one_turn, refined_wrong, refined_rejecting], MOMENTS) == "q2"
    assert pick_query([one_turn, _episode("q2", ["v_a"])], MOMENTS) == "q1"
    with pytest.raises(VideosearchError, match="holds no query"):
        pick_query([], MOMENTS)


def test_find_episode_and_unknown_qids():
    preds = [_episode("q1", ["v_gt"]), _episode("q2", ["v_a"])]
    prediction, moment = find_episode(preds, MOMENTS, "q2")
    assert prediction is preds[1] and moment is MOMENTS[1]
    with pytest.raises(VideosearchError, match=r"no query with qid 'q9' in the predictions \(2 queries: 'q1', 'q2'\)"
                                               r".*'auto'"):
        find_episode(preds, MOMENTS, "q9")
    with pytest.raises(VideosearchError, match="annotation file"):  # predictions of another annotation file
        find_episode([_episode("x1", ["v_a"])], MOMENTS, "x1")
