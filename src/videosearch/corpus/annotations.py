"""Read moment annotations (VERIFIED, Charades-STA, DiDeMo, ActivityNet Captions) as Moment records.

Formats, by `fmt` name:
    verified: VERIFIED `*-FIG` jsonl, one object per line with `video`, `time` [start, end] (s),
        `desc_id`, `duration` (s), `cog_desc`, `fig_desc`, `fig_desc_score`.
    charades: Charades-STA text, lines `video start end##sentence` (s).
    didemo: DiDeMo JSON list of records with `video`, `description` and `times`, a list of
        [first, last] 5-second segment indices, one pair per annotator.
    activitynet: ActivityNet Captions JSON `{video: {duration, timestamps, sentences}}`.

Example:
    annotations = read_moments("data/charades_fig_test.jsonl")
    for moment in annotations:
        print(moment.qid, moment.video_id, moment.start_s, moment.end_s, moment.query)

A malformed line or record raises AnnotationError naming `file:line` (the record number, 1-based,
for the JSON formats); with `skip_bad=True` it is left out, listed in `Annotations.skipped`, and
a warning gives the count. Odd values (integers of 5000 digits or beyond float range, NaN, deep
nesting, half a surrogate pair) are malformed entries like any other, never a raw Python error.
"""

from __future__ import annotations

import json
import logging
import math
import os
import reprlib
import sys
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videosearch.corpus.types import Moment
from videosearch.errors import AnnotationError, ConfigError
from videosearch.jsontext import loads

logger = logging.getLogger(__name__)

FORMATS = ("auto", "verified", "charades", "didemo", "activitynet")
QUERY_FIELDS = ("fig_desc", "cog_desc")

DIDEMO_SEGMENT_S = 5.0
DIDEMO_DEFAULT_DURATION_S = 30.0

# Fields write_verified fills from the Moment; `extra` may not override them.
_VERIFIED_CORE_FIELDS = ("video", "time", "desc_id", "duration", "fig_desc")

# Values quoted in messages are shortened, so a huge or deeply nested value gives a one-line message.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, 60, 60, 40


@dataclass
class Annotations:
    """The moments read from one annotation file.

    Attributes:
        moments: the well-formed moments, in file order.
        skipped: (line or record number, reason) of each malformed entry left out with skip_bad=True.
    """

    moments: list[Moment]
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.moments)

    def __iter__(self) -> Iterator[Moment]:
        return iter(self.moments)


class _Malformed(Exception):
    """One line or record is malformed; carries what is wrong (the caller adds file:line)."""


def read_moments(
    path: str | os.PathLike[str],
    fmt: str = "auto",
    *,
    query_field: str = "fig_desc",
    skip_bad: bool = False,
    durations: Mapping[str, float] | None = None,
) -> Annotations:
    """Read an annotation file as Moment records.

    Query ids (`qid`): VERIFIED `desc_id`; Charades-STA the 1-based line number; DiDeMo
    `annotation_id`, else the 1-based record number; ActivityNet `f"{video_id}#{i}"` with i the
    0-based sentence index. Durations: from the file; DiDeMo 30.0 s unless the record has a
    `duration`; Charades-STA has none, so they come from `durations` (video id -> seconds) or are
    float("nan"). DiDeMo spans are [5 * first, 5 * (last + 1)] s for the most frequent annotator
    pair (ties go to the pair listed first).

    Args:
        path: the annotation file.
        fmt: one of "auto", "verified", "charades", "didemo", "activitynet". "auto" picks by
            extension: .jsonl verified, .txt charades, .json didemo (top-level list) or
            activitynet (top-level object).
        query_field: VERIFIED only: "fig_desc" (the fine-grained query) or "cog_desc".
        skip_bad: leave out malformed lines/records (listed in `skipped`) instead of raising.
        durations: Charades-STA only: video id -> duration in seconds.

    Returns:
        Annotations with the moments in file order and the skipped entries.

    Raises:
        AnnotationError: the file is missing or unreadable, or a line/record is malformed (the
            message names `file:line` and what is wrong) and skip_bad is False.
        ConfigError: fmt or query_field is not one of the allowed values.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"fmt={fmt!r} is not a known annotation format; use one of {', '.join(FORMATS)}")
    if query_field not in QUERY_FIELDS:
        raise ConfigError(f"query_field={query_field!r} is not a VERIFIED query field; use one of {QUERY_FIELDS}")
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(path, None, "no such annotation file; check the path")

    data: Any = None
    if fmt == "auto" or fmt in ("didemo", "activitynet"):
        fmt, data = _detect_format(path, fmt)
    if fmt == "verified":
        entries = _verified_entries(path, query_field)
    elif fmt == "charades":
        entries = _charades_entries(path, durations or {})
    elif fmt == "didemo":
        entries = _didemo_entries(path, data)
    else:
        entries = _activitynet_entries(path, data)

    annotations = Annotations(moments=[])
    for number, entry in entries:
        if isinstance(entry, Moment):
            entry = _unicode_checked(entry)
        if isinstance(entry, Moment):
            annotations.moments.append(entry)
        elif skip_bad:
            annotations.skipped.append((number, str(entry)))
        else:
            raise AnnotationError(path, number, str(entry))
    if annotations.skipped:
        first_number, first_reason = annotations.skipped[0]
        logger.warning(
            "%s: skipped %d malformed entries (first at line %d: %s)",
            path, len(annotations.skipped), first_number, first_reason,
        )
    return annotations


def write_verified(
    path: str | os.PathLike[str],
    moments: Iterable[Moment],
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Write moments as a VERIFIED-format jsonl file, atomically; `read_moments` reads it back.

    Each line has `video`, `time` [start_s, end_s], `desc_id` (the qid, written as an int when
    it is a plain decimal number, as VERIFIED does), `duration`, and `fig_desc` = `cog_desc` =
    the query. `extra[qid]` adds or overrides fields of that moment's line (e.g. a coarser
    `cog_desc`, `fig_desc_score`, paraphrases).

    Args:
        path: output .jsonl file.
        moments: the moments to write, in order.
        extra: qid -> extra JSON-serialisable fields for that line.

    Raises:
        ValueError: a duration or time is not finite, or `extra` overrides a core field
            (video, time, desc_id, duration, fig_desc).
    """
    path = Path(path)
    lines = [json.dumps(_verified_record(m, (extra or {}).get(m.qid, {})), ensure_ascii=False) for m in moments]
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")
    try:
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _verified_record(moment: Moment, extra: Mapping[str, Any]) -> dict[str, Any]:
    """One VERIFIED jsonl object for a moment, with `extra` fields merged in."""
    for name, value in (("start_s", moment.start_s), ("end_s", moment.end_s), ("duration_s", moment.duration_s)):
        if not math.isfinite(value):
            raise ValueError(f"moment {moment.qid!r}: {name} must be finite to write VERIFIED jsonl, got {value}")
    overridden = sorted(set(extra) & set(_VERIFIED_CORE_FIELDS))
    if overridden:
        raise ValueError(f"extra[{moment.qid!r}] may not set {overridden}; change the Moment instead")
    # VERIFIED desc_ids are ints; write a qid such as "65" as 65 but keep "065", "q1" or one of more digits than
    # int() reads as strings.
    qid = moment.qid
    readable = len(qid) <= (sys.get_int_max_str_digits() or len(qid))
    as_int = qid.isascii() and qid.isdecimal() and readable and str(int(qid)) == qid
    desc_id: int | str = int(qid) if as_int else qid
    record: dict[str, Any] = {
        "video": moment.video_id,
        "time": [moment.start_s, moment.end_s],
        "desc_id": desc_id,
        "duration": moment.duration_s,
        "cog_desc": moment.query,
        "fig_desc": moment.query,
    }
    record.update(extra)
    return record


def _detect_format(path: Path, fmt: str) -> tuple[str, Any]:
    """Resolve fmt "auto" from the extension; for JSON formats also load and return the data."""
    suffix = path.suffix.lower()
    if fmt == "auto" and suffix == ".jsonl":
        return "verified", None
    if fmt == "auto" and suffix == ".txt":
        return "charades", None
    if fmt == "auto" and suffix != ".json":
        raise ConfigError(
            f"{path}: cannot tell the annotation format from the extension {suffix!r}; "
            f"pass fmt= one of {', '.join(FORMATS[1:])}"
        )
    data = _load_json(path)
    if fmt == "auto":
        fmt = "didemo" if isinstance(data, list) else "activitynet"
    expected = list if fmt == "didemo" else dict
    if not isinstance(data, expected):
        raise AnnotationError(
            path, None,
            f"{fmt} annotations must be a JSON {'list' if expected is list else 'object'} at the top level, "
            f"got {type(data).__name__}",
        )
    return fmt, data


def _load_json(path: Path) -> Any:
    """Parse a whole JSON file, turning decode errors into AnnotationError with the line."""
    try:
        return loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise AnnotationError(path, None, f"not UTF-8 text ({err.reason}); re-save it as UTF-8") from err
    except json.JSONDecodeError as err:
        raise AnnotationError(path, err.lineno, f"invalid JSON ({err.msg}, column {err.colno})") from err


def _numbered_lines(path: Path) -> Iterator[tuple[int, str | _Malformed]]:
    """Yield (1-based line number, text) for each non-blank line, or a _Malformed for non-UTF-8 lines."""
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield number, _Malformed(f"not UTF-8 text ({err.reason})")
            continue
        if line.strip():
            yield number, line


def _verified_entries(path: Path, query_field: str) -> Iterator[tuple[int, Moment | _Malformed]]:
    """Parse VERIFIED jsonl lines."""
    for number, line in _numbered_lines(path):
        if isinstance(line, _Malformed):
            yield number, line
            continue
        try:
            record = loads(line)
            yield number, _verified_moment(record, query_field)
        except json.JSONDecodeError as err:
            yield number, _Malformed(f"invalid JSON ({err.msg}, column {err.colno})")
        except _Malformed as err:
            yield number, err


def _verified_moment(record: Any, query_field: str) -> Moment:
    """One VERIFIED object -> Moment; raises _Malformed."""
    _require_object(record)
    desc_id = _get(record, "desc_id")
    if isinstance(desc_id, bool) or not isinstance(desc_id, (int, str)) or desc_id == "":
        raise _Malformed(f"field 'desc_id' must be an int or a non-empty string, got {_show(desc_id)}")
    start_s, end_s = _span(_get(record, "time"), "time")
    return Moment(
        qid=str(desc_id),
        query=_text(record, query_field),
        video_id=_text(record, "video"),
        start_s=start_s,
        end_s=end_s,
        duration_s=_duration(_get(record, "duration")),
    )


def _charades_entries(path: Path, durations: Mapping[str, float]) -> Iterator[tuple[int, Moment | _Malformed]]:
    """Parse Charades-STA lines `video start end##sentence`; qid is the line number."""
    for number, line in _numbered_lines(path):
        if isinstance(line, _Malformed):
            yield number, line
            continue
        try:
            yield number, _charades_moment(line, str(number), durations)
        except _Malformed as err:
            yield number, err


def _charades_moment(line: str, qid: str, durations: Mapping[str, float]) -> Moment:
    """One Charades-STA line -> Moment; raises _Malformed."""
    head, sep, sentence = line.partition("##")
    parts = head.split()
    if not sep or len(parts) != 3:
        raise _Malformed(f"expected 'video start end##sentence', got {line.strip()[:80]!r}")
    video_id, start_text, end_text = parts
    try:
        start_s, end_s = float(start_text), float(end_text)
    except ValueError as err:
        got = f"{_show(start_text)} {_show(end_text)}"
        raise _Malformed(f"start and end must be numbers (seconds), got {got}") from err
    start_s, end_s = _span([start_s, end_s], "start/end")
    query = sentence.strip()
    if not query:
        raise _Malformed("the sentence after '##' is empty")
    return Moment(qid, query, video_id, start_s, end_s, float(durations.get(video_id, math.nan)))


def _didemo_entries(path: Path, records: list[Any]) -> Iterator[tuple[int, Moment | _Malformed]]:
    """Parse DiDeMo records; the number reported is the 1-based record number."""
    for number, record in enumerate(records, start=1):
        try:
            yield number, _didemo_moment(record, str(number))
        except _Malformed as err:
            yield number, err


def _didemo_moment(record: Any, record_qid: str) -> Moment:
    """One DiDeMo record -> Moment, using the most frequent annotator segment pair; raises _Malformed."""
    _require_object(record)
    times = _get(record, "times")
    if not isinstance(times, list) or not times:
        raise _Malformed(f"field 'times' must be a non-empty list of [first, last] segment pairs, got {_show(times)}")
    pairs = []
    for pair in times:
        if (
            not isinstance(pair, list) or len(pair) != 2
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in pair)
        ):
            raise _Malformed(f"field 'times' must hold [first, last] segment index pairs (ints), got {_show(pair)}")
        if pair[0] < 0 or pair[0] > pair[1]:
            raise _Malformed(f"segment pair {pair} must have 0 <= first <= last")
        pairs.append((pair[0], pair[1]))
    counts = Counter(pairs)
    first, last = max(pairs, key=counts.__getitem__)  # max keeps the first of equal counts
    start_s, end_s = _number(first), _number(last)
    if start_s is None or end_s is None or not math.isfinite(DIDEMO_SEGMENT_S * (end_s + 1)):
        raise _Malformed(f"segment pair {_show([first, last])} is too large to be a time in seconds")
    qid = record.get("annotation_id", record_qid)
    if isinstance(qid, bool) or not isinstance(qid, (int, str)) or qid == "":
        raise _Malformed(f"field 'annotation_id' must be an int or a non-empty string, got {_show(qid)}")
    duration_s = _duration(record["duration"]) if "duration" in record else DIDEMO_DEFAULT_DURATION_S
    return Moment(
        qid=str(qid),
        query=_text(record, "description"),
        video_id=_text(record, "video"),
        start_s=DIDEMO_SEGMENT_S * start_s,
        end_s=DIDEMO_SEGMENT_S * (end_s + 1),
        duration_s=duration_s,
    )


def _activitynet_entries(path: Path, videos: dict[str, Any]) -> Iterator[tuple[int, Moment | _Malformed]]:
    """Parse ActivityNet Captions; one entry per sentence, numbered by the 1-based video record."""
    for number, (video_id, record) in enumerate(videos.items(), start=1):
        try:
            _require_object(record)
            duration_s = _duration(_get(record, "duration"))
            timestamps, sentences = _get(record, "timestamps"), _get(record, "sentences")
            if not (isinstance(timestamps, list) and isinstance(sentences, list)) or len(timestamps) != len(sentences):
                raise _Malformed("'timestamps' and 'sentences' must be lists of the same length")
        except _Malformed as err:
            yield number, _Malformed(f"video {_show(video_id)}: {err}")
            continue
        for i, (span, sentence) in enumerate(zip(timestamps, sentences, strict=True)):
            try:
                start_s, end_s = _span(span, f"timestamps[{i}]")
                if not isinstance(sentence, str) or not sentence.strip():
                    raise _Malformed(f"sentences[{i}] must be a non-empty string, got {_show(sentence)}")
                yield number, Moment(f"{video_id}#{i}", sentence.strip(), video_id, start_s, end_s, duration_s)
            except _Malformed as err:
                yield number, _Malformed(f"video {_show(video_id)}: {err}")


def _unicode_checked(moment: Moment) -> Moment | _Malformed:
    """The moment, or a _Malformed if a JSON escape left half a surrogate pair in its text (tokenizers refuse it)."""
    for name, text in (("query id", moment.qid), ("query", moment.query), ("video id", moment.video_id)):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _Malformed(f"the {name} {_show(text)} holds half of a surrogate pair; fix its \\u escape")
    return moment


def _require_object(record: Any) -> None:
    """Raise _Malformed unless the record is a JSON object."""
    if not isinstance(record, dict):
        raise _Malformed(f"expected a JSON object, got {type(record).__name__}")


def _get(record: dict[str, Any], key: str) -> Any:
    """A required field; raises _Malformed naming it when absent."""
    if key not in record:
        raise _Malformed(f"missing field '{key}'")
    return record[key]


def _text(record: dict[str, Any], key: str) -> str:
    """A required non-empty string field, stripped."""
    value = _get(record, key)
    if not isinstance(value, str) or not value.strip():
        raise _Malformed(f"field '{key}' must be a non-empty string, got {_show(value)}")
    return value.strip()


def _show(value: Any) -> str:
    """A short repr of a value read from the file, for messages."""
    return _SHORT.repr(value)


def _number(value: Any) -> float | None:
    """A finite JSON number as float, else None (also for an integer beyond float range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _span(value: Any, name: str) -> tuple[float, float]:
    """[start, end] seconds with 0 <= start <= end; raises _Malformed naming `name`."""
    start_s = end_s = None
    if isinstance(value, list) and len(value) == 2:
        start_s, end_s = _number(value[0]), _number(value[1])
    if start_s is None or end_s is None:
        raise _Malformed(f"'{name}' must be [start, end] in seconds (two numbers), got {_show(value)}")
    if start_s < 0 or end_s < 0:
        raise _Malformed(f"'{name}' has a negative time: {_show(value)}")
    if start_s > end_s:
        raise _Malformed(f"'{name}' has start {start_s} > end {end_s}")
    return start_s, end_s


def _duration(value: Any) -> float:
    """A duration in seconds: a finite number > 0; raises _Malformed."""
    duration_s = _number(value)
    if duration_s is None or duration_s <= 0:
        raise _Malformed(f"field 'duration' must be a number of seconds > 0, got {_show(value)}")
    return duration_s
