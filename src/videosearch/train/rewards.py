"""GRPO's rewards: plain functions of one sampled episode, each weighted in `RewardWeights` (DESIGN.md section 1).

    reward = sum(weight * REWARDS[name](episode) for name, weight in weights.items())

An episode is one query's turns: the video each turn was shown, what the policy wrote, and, where it refined, how
much the refined query raised the ground truth's probability. With one turn (the reference's setting) the terms are
the reference's: the answer is the verdict. With several, the answer is the episode's outcome, what VR R@1 counts:
right when it ends on the ground truth, matched or ranked first by the refined search after its last rejection.
(Scoring every verdict, the first design, taught the policy to end episodes early: each turn was one more chance to
fail and none to find the moment; `docs/grpo` measures both.) The format terms are means over turns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from videosearch.corpus.types import Moment
from videosearch.eval.metrics import temporal_iou
from videosearch.policy.format import ParsedOutput

#: the reference's IoU reward for a correct `not_matched`: there is no span to score
NOT_MATCHED_IOU = 0.5


@dataclass
class SampledTurn:
    """One turn of a sampled episode."""

    video: str  # the video shown
    parsed: ParsedOutput
    refine_gain: float | None = None  # p_gt(q') - p_gt(q) when the turn refined the query


@dataclass
class SampledEpisode:
    """One sampled episode of a query."""

    moment: Moment
    turns: list[SampledTurn]
    # multi-turn sampling: the video the episode ends on (the matched one, or the refined search's first unshown
    # video after its last rejection; "" for none); None: one turn, the verdict is the answer
    final_video: str | None = None

    def verdict_right(self, turn: SampledTurn) -> bool:
        return turn.parsed.answer != "unparsable" and (
            (turn.parsed.answer == "matched") == (turn.video == self.moment.video_id))


def answer_reward(episode: SampledEpisode) -> float:
    """+1 when the episode's answer is right, -1 otherwise: its verdict on one turn, its final video on several."""
    if episode.final_video is not None:
        return 1.0 if episode.final_video == episode.moment.video_id else -1.0
    return 1.0 if all(episode.verdict_right(t) for t in episode.turns) else -1.0


def think_reward(episode: SampledEpisode) -> float:
    """Share of turns whose reasoning is one well-formed `<think>...</think>`."""
    return _mean([float(t.parsed.has_think) for t in episode.turns])


def time_reward(episode: SampledEpisode) -> float:
    """Share of turns whose span fits their answer: a well-formed start < end on a match, none otherwise."""
    def fits(parsed: ParsedOutput) -> bool:
        if parsed.answer == "matched":
            return parsed.span_s is not None and parsed.span_s[0] < parsed.span_s[1]
        return not parsed.has_time
    return _mean([float(fits(t.parsed)) for t in episode.turns])


def iou_reward(episode: SampledEpisode) -> float:
    """The final span's temporal IoU with the ground truth when the answer is right (`NOT_MATCHED_IOU` for a right
    answer without a span: a right `not_matched`, or the refined search's find); 0 when it is wrong."""
    final = episode.turns[-1]
    if answer_reward(episode) < 0:
        return 0.0
    if final.parsed.answer != "matched":
        return NOT_MATCHED_IOU
    moment = episode.moment
    return temporal_iou(final.parsed.span_s, (moment.start_s, moment.end_s)) if final.parsed.span_s else 0.0


def refine_reward(episode: SampledEpisode) -> float:
    """Share of turns that ended with `<REFINE>`."""
    return _mean([float(t.parsed.has_refine) for t in episode.turns])


def refine_quality_reward(episode: SampledEpisode) -> float:
    """Mean over the episode's refinements of p_gt(q') - p_gt(q); 0 when it did not refine."""
    return _mean([t.refine_gain for t in episode.turns if t.refine_gain is not None])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


REWARDS: dict[str, Callable[[SampledEpisode], float]] = {
    "answer": answer_reward, "think": think_reward, "time": time_reward, "iou": iou_reward,
    "refine": refine_reward, "refine_quality": refine_quality_reward,
}


@dataclass
class RewardWeights:
    """The weight of each term of `REWARDS`; the defaults are the reference's Charades weights."""

    answer: float = 1.6
    think: float = 0.05
    time: float = 0.05
    iou: float = 0.35
    refine: float = 0.10
    refine_quality: float = 0.8

    def score(self, episode: SampledEpisode) -> tuple[float, dict[str, float]]:
        """(the weighted reward, each term's unweighted value)."""
        terms = {name: fn(episode) for name, fn in REWARDS.items()}
        return sum(getattr(self, name) * value for name, value in terms.items()), terms

    def to_dict(self) -> dict[str, float]:
        return asdict(self)
