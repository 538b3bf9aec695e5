"""An episode cut at an earlier turn: what a run with a lower turn limit would have written.

    two_turn = [truncate_episode(p, 2) for p in read_predictions("runs/decompose/policy-sqr-t3.jsonl")]

An episode's turns 1..t do not depend on the turn limit, only on what came before them, so one 3-turn run gives
the figures of the 1-, 2- and 3-turn runs (`bench/decompose.py`). What differs at the cut is only what the cut
turn did after its verdict: a run that ends there does not refine, so the ranking it ends with is the one that
turn was shown (the ranking before its refinement) and the turn has no latent steps or refinement fields.
"""

from __future__ import annotations

import dataclasses

from videosearch.errors import VideosearchError
from videosearch.eval.predictions import Judgement, Prediction

# judgement fields that describe the refinement after a turn (the agent writes them; see agent/episode.py)
RANKING_AFTER = "ranking_after"  # the ranking the refined query gave, best first
REFINEMENT_FIELDS = (RANKING_AFTER, "rewrite", "oracle_latents")
RANK_AFTER = "gt_rank_after"  # the ground truth's rank after the refinement; None on a turn that did not refine


def truncate_episode(prediction: Prediction, turns: int) -> Prediction:
    """The prediction a run limited to `turns` turns would have made, up to timing (`seconds` are kept).

    Args:
        prediction: an agent episode whose refined turns record `ranking_after` (every turn but the last one
            that ended the episode, when that one refined).
        turns: the turn limit, >= 1.

    Returns:
        A new prediction: the first `turns` judgements, the ranking shown at the last of them, and
        `extra["max_turns"] = turns` where the prediction records its turn limit.

    Raises:
        VideosearchError: the episode is cut before a turn whose ranking it did not record.
    """
    if turns < 1:
        raise ValueError(f"turns must be >= 1, got {turns}")
    extra = dict(prediction.extra)
    if "max_turns" in extra:
        extra["max_turns"] = turns
    judgements = [dataclasses.replace(j, extra=dict(j.extra)) for j in prediction.judgements]
    if turns >= len(judgements):
        return dataclasses.replace(prediction, judgements=judgements, extra=extra)
    kept = judgements[:turns]
    if turns == 1:
        ranking = list(prediction.ranking_turn1)
    else:
        ranking = kept[-2].extra.get(RANKING_AFTER)
        if not isinstance(ranking, list):
            raise VideosearchError(f"query {prediction.qid!r}: turn {turns - 1} records no {RANKING_AFTER!r}, so "
                                   f"the episode cannot be cut at turn {turns}; rerun it with this version's agent")
        ranking = list(ranking)
    kept[-1] = _without_refinement(kept[-1])
    return dataclasses.replace(prediction, ranking=ranking, judgements=kept, extra=extra)


def _without_refinement(judgement: Judgement) -> Judgement:
    """The judgement as the last turn of an episode writes it: no latent steps and no refinement fields."""
    extra = {k: v for k, v in judgement.extra.items() if k not in REFINEMENT_FIELDS}
    if RANK_AFTER in extra:
        extra[RANK_AFTER] = None
    return dataclasses.replace(judgement, latent_steps=0, extra=extra)
