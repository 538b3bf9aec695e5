"""One episode of a predictions file, turn by turn: what the agent was shown, what it said and why.

    videosearch eval --pred runs/agent/sqr.jsonl --annotations runs/world/test.jsonl --transcript auto

From Python:
    prediction, moment = find_episode(read_predictions(path), moments, pick_query(predictions, moments))
    Console().print(format_transcript(prediction, moment))

For one query and its ground truth the transcript shows the query; for each turn the video shown (and
whether it is the ground truth), the verdict with P(matched) when the judgement records ``match_prob``,
the reasoning (the ``<think>`` text of the policy's output ``text``), the span on a match, and the ground
truth's rank before and after the turn's refinement (``gt_rank_before`` / ``gt_rank_after``); then the
final answer's span against the ground truth's, with their IoU. A judgement without these extras (a
search-only baseline) shows what it has: the turn-1 rank then comes from ``ranking_turn1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from videosearch.corpus.types import Moment
from videosearch.errors import VideosearchError
from videosearch.eval import metrics
from videosearch.eval.predictions import Judgement, Prediction
from videosearch.eval.report import join_predictions
from videosearch.policy.format import parse_output

AUTO = "auto"  # the qid that asks `pick_query` to choose
LABEL_WIDTH = len("ground truth")


def pick_query(predictions: Sequence[Prediction], moments: Sequence[Moment]) -> str:
    """The qid of a telling episode, for a demo.

    The first query (in file order) whose episode refined at least once (it has more than one turn) and
    ended ``matched`` on the ground-truth video; else the first that refined; else the first query.

    Args:
        predictions: a predictions file's records.
        moments: the ground truth they were made for.

    Returns:
        A qid of ``predictions``.

    Raises:
        VideosearchError: no prediction, or predictions and annotations that do not belong together
            (as :func:`videosearch.eval.report.join_predictions`).
    """
    by_qid = join_predictions(predictions, moments)
    if not by_qid:
        raise VideosearchError("the predictions file holds no query; there is no episode to show")
    gt_video = {moment.qid: moment.video_id for moment in moments}
    refined = [pred for pred in by_qid.values() if len(pred.judgements) > 1]
    for pred in refined:
        final = pred.judgements[-1]
        if final.answer == metrics.MATCHED and final.video == gt_video[pred.qid]:
            return pred.qid
    return (refined[0] if refined else next(iter(by_qid.values()))).qid


def find_episode(predictions: Sequence[Prediction], moments: Sequence[Moment], qid: str) -> tuple[Prediction, Moment]:
    """The prediction of ``qid`` and its ground truth.

    Args:
        predictions: a predictions file's records.
        moments: the ground truth they were made for.
        qid: the query id, as the predictions file writes it.

    Returns:
        ``(prediction, moment)`` of that query.

    Raises:
        VideosearchError: ``qid`` is not in the predictions, or predictions and annotations do not
            belong together.
    """
    by_qid = join_predictions(predictions, moments)
    if qid not in by_qid:
        known = list(by_qid)
        shown = ", ".join(repr(q) for q in known[:5]) + (f", ... {len(known) - 5} more" if len(known) > 5 else "")
        raise VideosearchError(
            f"no query with qid {qid!r} in the predictions ({len(known)} queries: {shown or 'none'}); "
            f"pass one of them, or {AUTO!r} to pick one"
        )
    return by_qid[qid], next(moment for moment in moments if moment.qid == qid)


def format_transcript(prediction: Prediction, moment: Moment) -> RenderableType:
    """Render one episode for the terminal; long text wraps to the console's width.

    Args:
        prediction: the episode (one line of a predictions file).
        moment: its ground truth.

    Returns:
        A rich renderable for ``Console.print``.
    """
    settings = _settings(prediction.extra)
    title = f"Query {prediction.qid}" + (f" · {settings}" if settings else "")
    gt = f"{moment.video_id}, {_span(moment.start_s, moment.end_s)}" + (
        "" if math.isnan(moment.duration_s) else f" of {moment.duration_s:.1f} s")
    parts: list[RenderableType] = [
        Text(title, style="bold"),
        _rows([("query", prediction.query), ("ground truth", gt)]),
    ]
    for turn, judgement in enumerate(prediction.judgements):
        is_gt = judgement.video == moment.video_id
        parts.append(Text(f"Turn {turn + 1} · {judgement.video}, {'the' if is_gt else 'not the'} ground truth",
                          style="bold"))
        parts.append(_rows(_turn_rows(prediction, moment, turn)))
    parts.append(Text("Final answer", style="bold"))
    parts.append(_rows(_final_rows(prediction, moment)))
    return Group(*parts)


def _turn_rows(prediction: Prediction, moment: Moment, turn: int) -> list[tuple[str, str]]:
    judgement = prediction.judgements[turn]
    extra = judgement.extra
    verdict = judgement.answer
    if _is_probability(extra.get("match_prob")):
        verdict += f", P(matched) {extra['match_prob']:.2f}"
    rows = [("verdict", verdict)]
    if judgement.span is not None:
        rows.append(("span", _span(*judgement.span)))
    text = extra.get("text")
    if isinstance(text, str):
        parsed = parse_output(text)
        if parsed.think:
            rows.append(("reasoning", parsed.think))
        if judgement.answer == "unparsable" or not parsed.think:
            rows.append(("output", text or "(empty)"))
    if "rewrite" in extra:  # HQR: the query the turn wrote for the next search
        rewrite = extra["rewrite"]
        rows.append(("rewritten", rewrite if isinstance(rewrite, str) else "none written; the query is kept"))
    rank = _rank_row(prediction, moment, turn)
    if rank:
        rows.append(("ground truth", rank))
    return rows


def _rank_row(prediction: Prediction, moment: Moment, turn: int) -> str:
    """The ground truth's rank in the ranking this turn was shown from, and in the refined one."""
    extra = prediction.judgements[turn].extra
    if "gt_rank_before" in extra:
        before: Any = extra["gt_rank_before"]
    elif turn == 0:  # no agent extras (a baseline): turn 1 is shown from the original query's ranking
        before = _rank(prediction.ranking_turn1, moment.video_id)
    else:
        return ""
    judged_before = any(j.video == moment.video_id for j in prediction.judgements[:turn])
    text = _rank_text(before, judged_before, len(prediction.ranking_turn1))
    refined = turn < len(prediction.judgements) - 1 or extra.get("gt_rank_after") is not None
    if "gt_rank_after" in extra and refined:
        after = extra["gt_rank_after"]
        rejected = judged_before or prediction.judgements[turn].video == moment.video_id
        after_text = _rank_text(after, rejected, len(prediction.ranking))
        if _is_rank(before) and _is_rank(after):
            after_text = str(after)
        how = "excluding the judged video" if prediction.extra.get("refine") == "none" else "the refinement"
        text += f" → {after_text} after {how}"
    return text


def _final_rows(prediction: Prediction, moment: Moment) -> list[tuple[str, str]]:
    final: Judgement = prediction.judgements[-1]
    on_gt = final.video == moment.video_id
    answer = f"{final.answer} on {final.video}, {'the' if on_gt else 'not the'} ground truth"
    gt_span = _span(moment.start_s, moment.end_s)
    if final.answer != metrics.MATCHED:
        moment_row = "no moment answered: a miss"
    elif not on_gt:
        moment_row = f"{_span(*final.span) if final.span else 'no span'} on the wrong video: a miss"
    elif final.span is None:
        moment_row = f"no span given (ground truth {gt_span}): a miss"
    else:
        pred_span = metrics.clamp_span(final.span, moment.duration_s)
        iou = metrics.temporal_iou(pred_span, metrics.clamp_span((moment.start_s, moment.end_s), moment.duration_s))
        moment_row = f"{_span(*pred_span)} against the ground truth's {gt_span}: IoU {iou:.2f}"
    final_rank = _rank(prediction.ranking, moment.video_id)
    if final_rank is not None:
        rank_row = f"rank {final_rank} in the final ranking"
    elif any(j.video == moment.video_id and j.answer != metrics.MATCHED for j in prediction.judgements):
        rank_row = "left out of the final ranking (rejected)"
    else:
        rank_row = f"not in the top {len(prediction.ranking)} of the final ranking"
    return [("answer", answer), ("span", moment_row), ("ground truth", rank_row)]


def _settings(extra: dict[str, Any]) -> str:
    """How the episode was run, as its predictions record it: the agent's settings, or an older file's mode."""
    if isinstance(extra.get("mode"), str):
        return str(extra["mode"])
    parts = [f"{name} {extra[name]}" for name in ("judge", "refine") if isinstance(extra.get(name), str)]
    if _is_rank(extra.get("max_turns")):
        parts.append(f"at most {extra['max_turns']} turns")
    return ", ".join(parts)


def _rows(rows: list[tuple[str, str]]) -> RenderableType:
    """Label/value lines indented under a heading; values wrap, long words (ids) fold rather than cut."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="dim", min_width=LABEL_WIDTH)  # one width: the sections align
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, Text(value))
    return Padding(grid, (0, 0, 0, 2))


def _rank_text(rank: object, rejected: bool, depth: int) -> str:
    if _is_rank(rank):
        return f"rank {rank}"
    # judged videos leave the ranking, so a rejected ground truth has no rank any more
    return "left out of the ranking (rejected)" if rejected else f"not in the top {depth}"


def _is_rank(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rank(ranking: Sequence[str], video_id: str) -> int | None:
    return ranking.index(video_id) + 1 if video_id in ranking else None


def _span(start_s: float, end_s: float) -> str:
    return f"{start_s:.1f}–{end_s:.1f} s"


def _is_probability(value: object) -> bool:
    # compared, not converted: an extra may hold any JSON number, an integer beyond float range too
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
