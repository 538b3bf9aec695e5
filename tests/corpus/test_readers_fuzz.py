"""Fuzzing of the annotation and predictions readers with hypothesis: only our own errors, or a valid result.

Records of every format are drawn with each field either plausible, any JSON value, odd raw text (5000-digit
integers, 1e400, NaN, deep nesting) or missing; lines are also cut short, replaced by random text or bytes.
A result must hold only sane moments (finite spans, readable text) or predictions that write back unchanged
and evaluate without error; anything else must be a VideosearchError, never another exception.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from videosearch.corpus.annotations import read_moments, write_verified
from videosearch.corpus.types import Moment
from videosearch.errors import VideosearchError
from videosearch.eval.predictions import PredictionError, read_predictions, write_predictions
from videosearch.eval.report import evaluate

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Raw JSON text that json.dumps cannot produce from a Python value (or that Python's json cannot parse).
ODD_RAW = ["7" * 5000, "-" + "9" * 4400, "1" + "0" * 400, "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "-0",
           "[" * 3000 + "]" * 3000, "[" * 990 + "]" * 990, '"\\ud800"', '"\\udfff x"', "1E+2", "0.5e-400"]
_RAW = "\x00raw{}\x00"  # a string placeholder replaced by ODD_RAW[i] in the dumped text

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**320)
    | st.floats() | st.text(max_size=12) | st.sampled_from(["", " ", "v1", "q1", "65", "065", "\u2028", "a\u0085b"])
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
json_finite = st.recursive(
    json_scalars.filter(lambda value: not (isinstance(value, float) and not math.isfinite(value))),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)
odd_raw = st.integers(0, len(ODD_RAW) - 1).map(_RAW.format)


_DROP = object()  # a mutation that leaves the field out


@st.composite
def _record(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> Any:
    """A plausible JSON object with a few fields mutated (left out, any JSON value, odd raw text) and extra keys;
    now and then not an object at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values | odd_raw)
    record = {key: draw(value) for key, value in fields.items()}
    n_mutations = draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2, 3]))
    keys = st.lists(st.sampled_from(sorted(fields)), min_size=n_mutations, max_size=n_mutations, unique=True)
    for key in draw(keys):
        record[key] = draw(st.just(_DROP) | json_values | odd_raw)
    extra = json_values if draw(st.integers(0, 3)) == 0 else json_finite  # NaN in an extra field is refused
    record.update(draw(st.dictionaries(st.text(max_size=6), extra, max_size=2)))
    return {key: value for key, value in record.items() if value is not _DROP}


seconds = st.floats(0, 100) | st.integers(0, 100)
span = st.lists(seconds, min_size=2, max_size=2).map(sorted)
text = st.sampled_from(["v1", "v2", "q1", "the dog jumps", " spaced "])
qids = st.sampled_from(["q1", "q2", "q3", "1", "2"]) | st.text(min_size=1, max_size=4)

verified_record = _record({
    "video": text, "time": span, "desc_id": st.integers(0, 99) | qids | st.just("7" * 5000),
    "duration": st.floats(1, 200), "cog_desc": text, "fig_desc": text, "fig_desc_score": st.floats(0, 1),
})
didemo_record = _record({
    "video": text, "description": text, "annotation_id": st.integers(0, 99) | qids, "duration": st.floats(1, 200),
    "times": st.lists(st.lists(st.integers(0, 5), min_size=2, max_size=2).map(sorted), min_size=1, max_size=3),
})
activitynet_video = _record({
    "duration": st.floats(1, 200), "timestamps": st.lists(span, max_size=3), "sentences": st.lists(text, max_size=3),
})
judgement = _record({
    "video": text, "answer": st.sampled_from(["matched", "not_matched", "unparsable"]),
    "span": st.none() | span | st.lists(st.floats(), min_size=2, max_size=2), "generated_tokens": st.integers(0, 50),
    "latent_steps": st.integers(0, 4), "seconds": seconds | st.floats(0, 1e308),
})
prediction = _record({
    "qid": qids, "query": text, "ranking_turn1": st.lists(text, max_size=3), "ranking": st.lists(text, max_size=3),
    "judgements": st.lists(judgement, min_size=1, max_size=3),
})


def _dumps(value: Any) -> str:
    """JSON text of a drawn value (NaN and Infinity as Python writes them), odd raw tokens put in place."""
    dumped = json.dumps(value, allow_nan=True)
    for i, raw in enumerate(ODD_RAW):
        dumped = dumped.replace(json.dumps(_RAW.format(i)), raw)
    return dumped


@st.composite
def jsonl_text(draw: st.DrawFn, record: st.SearchStrategy[Any], max_lines: int = 5) -> str:
    """Lines of records; in half the files some are cut short, random text or blank; a final newline or not."""
    lines = []
    kinds = ["whole"] if draw(st.booleans()) else ["whole", "whole", "cut", "text", "blank"]
    for line in draw(st.lists(record.map(_dumps), max_size=max_lines)):
        kind = draw(st.sampled_from(kinds))
        if kind == "cut":
            line = line[: draw(st.integers(0, len(line)))]
        elif kind == "text":
            line = draw(st.text(max_size=30))
        elif kind == "blank":
            line = ""
        lines.append(line)
    return "\n".join(lines) + draw(st.sampled_from(["\n", ""]))


def charades_line(parts: tuple[str, str, str, str]) -> str:
    return f"{parts[0]} {parts[1]} {parts[2]}##{parts[3]}"


number_text = st.sampled_from(["0", "1.5", "7", "-1", "1e400", "nan", "inf", "-inf", "9" * 5000, "0x10", "1_0", ""])
charades_text = st.lists(
    st.tuples(st.sampled_from(["AO8RW", "v 2", ""]), number_text | st.floats().map(str), number_text, text)
    .map(charades_line) | st.text(max_size=30),
    max_size=5,
).map("\n".join)
whole_json_text = st.one_of(
    st.lists(didemo_record, max_size=4).map(_dumps),
    st.dictionaries(st.sampled_from(["v1", "v2", "v_x"]), activitynet_video, max_size=3).map(_dumps),
    json_values.map(_dumps), odd_raw.map(_dumps), st.text(max_size=40),
).flatmap(lambda dumped: st.sampled_from([dumped, dumped[: len(dumped) // 2]]))


def _check_moments(moments: list[Moment]) -> None:
    for moment in moments:
        for value in (moment.qid, moment.query, moment.video_id):
            assert isinstance(value, str) and value
            value.encode("utf-8")  # no half surrogate pairs
        assert moment.query == moment.query.strip() and moment.video_id == moment.video_id.strip()
        assert math.isfinite(moment.start_s) and math.isfinite(moment.end_s)
        assert 0 <= moment.start_s <= moment.end_s
        assert math.isnan(moment.duration_s) or (math.isfinite(moment.duration_s) and moment.duration_s > 0)


def _entries(content: bytes) -> int:
    """Lines a line reader must account for: the non-blank ones and those that are not UTF-8."""
    count = 0
    for raw in content.splitlines():
        try:
            count += bool(raw.decode("utf-8").strip())
        except UnicodeDecodeError:
            count += 1
    return count


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _read_or_our_error(path: Path, skip_bad: bool, fmt: str = "auto") -> list[Moment] | None:
    try:
        annotations = read_moments(path, fmt, skip_bad=skip_bad)
    except VideosearchError:
        return None
    _check_moments(annotations.moments)
    return annotations.moments


@FUZZ
@given(content=jsonl_text(verified_record))
def test_verified_reader(folder: Path, content: str) -> None:
    path = folder / "fig.jsonl"
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    annotations = read_moments(path, skip_bad=True)  # line by line, nothing is fatal with skip_bad
    _check_moments(annotations.moments)
    assert len(annotations.moments) + len(annotations.skipped) == _entries(path.read_bytes())
    _read_or_our_error(path, skip_bad=False)
    write_verified(folder / "again.jsonl", annotations.moments)
    assert read_moments(folder / "again.jsonl").moments == annotations.moments


@FUZZ
@given(content=charades_text)
def test_charades_reader(folder: Path, content: str) -> None:
    path = folder / "sta.txt"
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    assert _read_or_our_error(path, skip_bad=True) is not None
    _read_or_our_error(path, skip_bad=False)


@FUZZ
@given(content=whole_json_text, fmt=st.sampled_from(["auto", "didemo", "activitynet"]), skip_bad=st.booleans())
def test_didemo_and_activitynet_readers(folder: Path, content: str, fmt: str, skip_bad: bool) -> None:
    path = folder / "anno.json"
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    _read_or_our_error(path, skip_bad, fmt)


@FUZZ
@given(content=st.binary(max_size=200), suffix=st.sampled_from([".jsonl", ".txt", ".json"]), skip_bad=st.booleans())
def test_annotation_readers_on_random_bytes(folder: Path, content: bytes, suffix: str, skip_bad: bool) -> None:
    path = folder / f"bytes{suffix}"
    path.write_bytes(content)
    _read_or_our_error(path, skip_bad)


MOMENTS = [Moment(qid, "q", "v1", 1.0, 2.0, 10.0) for qid in ("q1", "q2", "q3", "1", "2")]


@FUZZ
@given(content=jsonl_text(prediction, max_lines=3), allow_truncated_tail=st.booleans())  # one bad line fails all
def test_predictions_reader(folder: Path, content: str, allow_truncated_tail: bool) -> None:
    path = folder / "pred.jsonl"
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        predictions = read_predictions(path, allow_truncated_tail=allow_truncated_tail)
    except PredictionError:
        return
    write_predictions(folder / "again.jsonl", predictions)
    assert read_predictions(folder / "again.jsonl") == predictions
    try:
        evaluate(predictions, MOMENTS, ignore_unknown_qids=True)
    except VideosearchError:
        pass


@FUZZ
@given(content=st.binary(max_size=200))
def test_predictions_reader_on_random_bytes(folder: Path, content: bytes) -> None:
    path = folder / "bytes.jsonl"
    path.write_bytes(content)
    try:
        read_predictions(path, allow_truncated_tail=True)
    except PredictionError:
        pass


def test_odd_raw_tokens_reach_the_files() -> None:
    """The placeholders are replaced, so the fuzzed text really holds the odd tokens."""
    dumped = _dumps({"a": [_RAW.format(0), _RAW.format(3)]})
    assert dumped == '{"a": [' + "7" * 5000 + ", 1e400]}"
