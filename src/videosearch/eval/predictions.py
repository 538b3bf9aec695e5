"""The predictions file (DESIGN.md section 5): one JSON object per query, written by every producer.

Each line holds ``qid``, ``query``, ``ranking_turn1``, ``ranking`` and ``judgements`` (one per turn,
the last is the final answer). Fields beyond those are allowed and kept in ``extra``, at the top
level and inside each judgement, so a file read and written again loses nothing.

Example:
    preds = read_predictions("runs/charades/predictions.jsonl")
    write_predictions("runs/charades/predictions_copy.jsonl", preds)

A resumable producer opens the file in append mode and calls :func:`append_prediction` per query.
After an interrupted run, :func:`existing_predictions` (or ``read_predictions(path,
allow_truncated_tail=True)``) drops the cut last line; rewrite the kept records with
:func:`write_predictions` before appending again. A producer calls :func:`existing_predictions`
before it writes ``--out``, so a file that is not a predictions file is refused, never replaced.
"""

from __future__ import annotations

import json
import logging
import math
import os
import reprlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeGuard

from videosearch.atomic import write_text_atomic
from videosearch.errors import VideosearchError
from videosearch.folders import FolderInUseError
from videosearch.jsontext import loads

log = logging.getLogger(__name__)

ANSWERS = ("matched", "not_matched", "unparsable")
PREDICTION_FIELDS = ("qid", "query", "ranking_turn1", "ranking", "judgements")
JUDGEMENT_FIELDS = ("video", "answer", "span", "generated_tokens", "latent_steps", "seconds")
LINE_START = b'{"qid": '  # how every line that _to_line writes begins


class PredictionError(VideosearchError):
    """A malformed predictions file; names ``file:line`` and what is wrong."""

    def __init__(self, path: object, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


@dataclass
class Judgement:
    """One turn's verdict on one retrieved video.

    Attributes:
        video: id of the video the policy was shown and judged.
        answer: ``"matched"``, ``"not_matched"`` or ``"unparsable"``.
        span: predicted ``(start_s, end_s)`` in seconds, or ``None`` (no span given).
        generated_tokens: text tokens the policy generated in this turn.
        latent_steps: latent (SQR) steps the policy took in this turn.
        seconds: wall-clock seconds this turn took.
        extra: any further fields of the judgement object, kept as they are.
    """

    video: str
    answer: str
    span: tuple[float, float] | None
    generated_tokens: int
    latent_steps: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The judgement as a JSON-ready dict, known fields first."""
        _check_no_clash(self.extra, JUDGEMENT_FIELDS)
        return {
            "video": self.video,
            "answer": self.answer,
            "span": None if self.span is None else [float(self.span[0]), float(self.span[1])],
            "generated_tokens": int(self.generated_tokens),
            "latent_steps": int(self.latent_steps),
            "seconds": float(self.seconds),
            **self.extra,
        }


@dataclass
class Prediction:
    """One query's episode: the rankings before and after refinement and every judgement.

    Attributes:
        qid: the query id, joined with the annotations' ``qid``.
        query: the query text.
        ranking_turn1: video ids ranked by the original query, best first.
        ranking: video ids ranked by the final query, best first.
        judgements: one per turn; the last one is the episode's final answer.
        extra: any further top-level fields, kept as they are.
    """

    qid: str
    query: str
    ranking_turn1: list[str]
    ranking: list[str]
    judgements: list[Judgement]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The prediction as a JSON-ready dict, known fields first."""
        _check_no_clash(self.extra, PREDICTION_FIELDS)
        return {
            "qid": self.qid,
            "query": self.query,
            "ranking_turn1": list(self.ranking_turn1),
            "ranking": list(self.ranking),
            "judgements": [judgement.to_dict() for judgement in self.judgements],
            **self.extra,
        }


def append_prediction(fh: IO[str], pred: Prediction) -> None:
    """Write one prediction as one line and flush, so an interrupted run keeps every finished query.

    Args:
        fh: a text file opened for appending (``open(path, "a", encoding="utf-8")``).
        pred: the prediction to write.
    """
    fh.write(_to_line(pred))
    fh.flush()


def write_predictions(path: str | os.PathLike[str], predictions: Iterable[Prediction]) -> None:
    """Write a whole predictions file atomically (see `videosearch.atomic.write_text_atomic`).

    Args:
        path: destination ``.jsonl``; its directory must exist.
        predictions: the records, written in order.
    """
    write_text_atomic(path, "".join(_to_line(pred) for pred in predictions))


def existing_predictions(path: str | os.PathLike[str]) -> list[Prediction]:
    """The predictions an output file already holds, so that a producer may resume or replace it.

    Args:
        path: the ``--out`` file of a producer.

    Returns:
        Its whole predictions in file order (a cut last line dropped); ``[]`` when it is missing or empty.

    Raises:
        FolderInUseError: `path` holds something else than predictions (the user's notes, say); replacing it
            would lose them.
        PredictionError: `path` starts as a predictions file but a line is malformed, or it cannot be read.
    """
    path = Path(path)
    if not path.exists():
        return []
    head = b""
    if path.is_file():
        with path.open("rb") as fh:
            head = fh.read(len(LINE_START))
    # all a killed run may leave is its first line cut short, which starts as every line we write
    ours = not head.strip() or LINE_START.startswith(head)
    refusal = FolderInUseError(f"{path} is not a predictions file: refusing to replace it; choose another --out")
    try:
        done = read_predictions(path, allow_truncated_tail=True)
    except PredictionError:
        if ours:
            raise
        raise refusal from None
    if not done and not ours:
        raise refusal
    return done


def read_predictions(path: str | os.PathLike[str], *, allow_truncated_tail: bool = False) -> list[Prediction]:
    """Read and validate a predictions file.

    Args:
        path: the ``.jsonl`` file; blank lines are skipped.
        allow_truncated_tail: drop (with a warning) a last line that is cut short (not valid JSON
            and without a final newline), as an interrupted writer leaves it.

    Returns:
        The predictions in file order.

    Raises:
        PredictionError: the file is missing or a line is malformed (``file:line: what is wrong``):
            bad JSON (also nesting too deep to parse), a missing field, a wrong type, an unknown
            answer, a span that is not two finite numbers, a count not below 2**63, no judgements,
            an extra field that strict JSON cannot store (NaN, Infinity), or a qid seen before.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PredictionError(path, None, f"cannot read predictions file ({exc})") from exc
    lines = text.split("\n")  # not splitlines(): U+2028 and friends may sit inside JSON strings
    predictions: list[Prediction] = []
    first_line_of: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = loads(line)
        except json.JSONDecodeError as exc:
            if allow_truncated_tail and lineno == len(lines) and not text.endswith("\n"):
                log.warning("%s:%d: dropping a truncated last line (an interrupted writer)", path, lineno)
                break
            raise PredictionError(path, lineno, f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
        try:
            pred = _parse_prediction(record)
        except ValueError as exc:
            raise PredictionError(path, lineno, str(exc)) from exc
        if pred.qid in first_line_of:
            first = first_line_of[pred.qid]
            raise PredictionError(path, lineno, f"duplicate qid {pred.qid!r} (first on line {first})")
        first_line_of[pred.qid] = lineno
        predictions.append(pred)
    return predictions


def _to_line(pred: Prediction) -> str:
    return json.dumps(pred.to_dict(), allow_nan=False) + "\n"


def _check_no_clash(extra: dict[str, Any], known: tuple[str, ...]) -> None:
    clash = sorted(set(extra) & set(known))
    if clash:
        raise ValueError(f"extra fields {clash} clash with the record's own fields; rename them")


def _parse_prediction(record: object) -> Prediction:
    """Validate one decoded line; a ``ValueError`` says which field is wrong and how."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {_describe(record)}")
    _require_fields(record, PREDICTION_FIELDS, "")
    judgements = record["judgements"]
    if not isinstance(judgements, list) or not judgements:
        raise ValueError(f"'judgements' must be a non-empty list (one per turn), got {_describe(judgements)}")
    return Prediction(
        qid=_nonempty_str(record["qid"], "qid"),
        query=_str(record["query"], "query"),
        ranking_turn1=_str_list(record["ranking_turn1"], "ranking_turn1"),
        ranking=_str_list(record["ranking"], "ranking"),
        judgements=[_parse_judgement(item, f"judgements[{i}]") for i, item in enumerate(judgements)],
        extra=_writable_extra(record, PREDICTION_FIELDS, ""),
    )


def _parse_judgement(item: object, where: str) -> Judgement:
    if not isinstance(item, dict):
        raise ValueError(f"'{where}' must be a JSON object, got {_describe(item)}")
    _require_fields(item, JUDGEMENT_FIELDS, f"{where}.")
    answer = item["answer"]
    if answer not in ANSWERS:
        raise ValueError(f"'{where}.answer' must be one of {', '.join(ANSWERS)}; got {_describe(answer)}")
    return Judgement(
        video=_str(item["video"], f"{where}.video"),
        answer=answer,
        span=_span(item["span"], f"{where}.span"),
        generated_tokens=_count(item["generated_tokens"], f"{where}.generated_tokens"),
        latent_steps=_count(item["latent_steps"], f"{where}.latent_steps"),
        seconds=_seconds(item["seconds"], f"{where}.seconds"),
        extra=_writable_extra(item, JUDGEMENT_FIELDS, f"{where}."),
    )


def _require_fields(record: dict[str, Any], names: tuple[str, ...], prefix: str) -> None:
    missing = [name for name in names if name not in record]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(repr(prefix + name) for name in missing)}")


def _writable_extra(record: dict[str, Any], known: tuple[str, ...], prefix: str) -> dict[str, Any]:
    """The fields beyond `known`, each checked to write back as strict JSON (a resumed run rewrites them)."""
    extra = {key: value for key, value in record.items() if key not in known}
    for key, value in extra.items():
        try:
            json.dumps(value, allow_nan=False)
        except ValueError as exc:
            raise ValueError(f"'{prefix}{key}' holds NaN or an infinite number, which JSON cannot store") from exc
        except TypeError as exc:
            raise ValueError(f"'{prefix}{key}' holds an integer too long to read ({_describe(value)})") from exc
        except RecursionError as exc:
            raise ValueError(f"'{prefix}{key}' is nested too deeply to write back") from exc
    return extra


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"'{where}' must be a string, got {_describe(value)}")
    return value


def _nonempty_str(value: object, where: str) -> str:
    text = _str(value, where)
    if not text:
        raise ValueError(f"'{where}' must be a non-empty string")
    return text


def _str_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"'{where}' must be a list of video id strings, got {_describe(value)}")
    return value


def _is_number(value: object) -> TypeGuard[int | float]:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        return False


def _span(value: object, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or not all(_is_number(item) for item in value):
        raise ValueError(f"'{where}' must be [start, end] or null (finite seconds), got {_describe(value)}")
    return float(value[0]), float(value[1])


def _count(value: object, where: str) -> int:
    # Bounded like an int64, so that reports can sum and average counts as floats.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValueError(f"'{where}' must be a non-negative integer below 2**63, got {_describe(value)}")
    return value


def _seconds(value: object, where: str) -> float:
    if not _is_number(value) or value < 0:
        raise ValueError(f"'{where}' must be a non-negative finite number of seconds, got {_describe(value)}")
    return float(value)


def _describe(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except RecursionError:  # nested almost as deep as the parser allows
        text = reprlib.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
