"""Predictions file: round trips, atomic and resumable writing, and a file:line error for every defect."""

import json
import math
import re

import numpy as np
import pytest

from videosearch.errors import VideosearchError
from videosearch.eval.predictions import (
    Judgement,
    Prediction,
    PredictionError,
    append_prediction,
    read_predictions,
    write_predictions,
)


def make_prediction(qid: str = "q1") -> Prediction:
    return Prediction(
        qid=qid,
        query="a person closes a laptop",
        ranking_turn1=["v2", "v1"],
        ranking=["v1", "v2"],
        judgements=[
            Judgement("v2", "not_matched", None, 31, 8, 0.75, extra={"think": "wrong room"}),
            Judgement("v1", "matched", (1.5, 4.0), 40, 0, 0.5),
        ],
        extra={"method": "sqr", "turn_videos": ["v2", "v1"]},
    )


def good_record(qid: str = "q1") -> dict:
    return make_prediction(qid).to_dict()


def test_round_trip_keeps_every_field_and_extra(tmp_path):
    path = tmp_path / "pred.jsonl"
    preds = [make_prediction("q1"), make_prediction("q2")]
    write_predictions(path, preds)
    assert read_predictions(path) == preds
    first = json.loads(path.read_text().splitlines()[0])
    assert list(first)[:5] == ["qid", "query", "ranking_turn1", "ranking", "judgements"]
    assert first["method"] == "sqr" and first["judgements"][0]["think"] == "wrong room"


def test_numpy_values_are_written_as_plain_json(tmp_path):
    pred = make_prediction()
    span = (np.float32(1.5), np.float64(4.0))
    pred.judgements[1] = Judgement("v1", "matched", span, np.int64(40), 0, np.float64(0.5))
    write_predictions(tmp_path / "pred.jsonl", [pred])
    (read,) = read_predictions(tmp_path / "pred.jsonl")
    assert read.judgements[1].span == (1.5, 4.0)
    assert read.judgements[1].generated_tokens == 40


def test_write_replaces_atomically_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "pred.jsonl"
    write_predictions(path, [make_prediction("old")])
    bad = make_prediction("new")
    bad.judgements[0].seconds = math.nan  # not valid JSON: the write fails half way
    with pytest.raises(ValueError):
        write_predictions(path, [make_prediction("new0"), bad])
    assert [pred.qid for pred in read_predictions(path)] == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.jsonl"]
    write_predictions(path, [make_prediction("new")])
    assert [pred.qid for pred in read_predictions(path)] == ["new"]


def test_extra_fields_may_not_shadow_known_fields(tmp_path):
    pred = make_prediction()
    pred.extra["qid"] = "other"
    with pytest.raises(ValueError, match="clash"):
        write_predictions(tmp_path / "pred.jsonl", [pred])


def test_append_is_resumable(tmp_path):
    path = tmp_path / "pred.jsonl"
    with open(path, "a", encoding="utf-8") as fh:
        append_prediction(fh, make_prediction("q1"))
    with open(path, "a", encoding="utf-8") as fh:
        append_prediction(fh, make_prediction("q2"))
    assert [pred.qid for pred in read_predictions(path)] == ["q1", "q2"]


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "pred.jsonl"
    path.write_text("\n" + json.dumps(good_record("q1")) + "\n\n" + json.dumps(good_record("q2")) + "\n")
    assert [pred.qid for pred in read_predictions(path)] == ["q1", "q2"]


def test_truncated_last_line_is_dropped_only_when_asked(tmp_path):
    path = tmp_path / "pred.jsonl"
    full = json.dumps(good_record("q2"))
    path.write_text(json.dumps(good_record("q1")) + "\n" + full[: len(full) // 2])
    with pytest.raises(PredictionError, match=rf"^{re.escape(str(path))}:2: not valid JSON"):
        read_predictions(path)
    assert [pred.qid for pred in read_predictions(path, allow_truncated_tail=True)] == ["q1"]


def test_truncation_is_not_tolerated_before_the_end(tmp_path):
    path = tmp_path / "pred.jsonl"
    full = json.dumps(good_record("q2"))
    path.write_text(json.dumps(good_record("q1")) + "\n" + full[:20] + "\n" + json.dumps(good_record("q3")))
    with pytest.raises(PredictionError, match=rf"^{re.escape(str(path))}:2: not valid JSON"):
        read_predictions(path, allow_truncated_tail=True)
    # A complete last line (it ends in a newline) that is bad is corruption, not an interruption.
    path.write_text(json.dumps(good_record("q1")) + "\n" + full[:20] + "\n")
    with pytest.raises(PredictionError, match=rf"^{re.escape(str(path))}:2: not valid JSON"):
        read_predictions(path, allow_truncated_tail=True)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(PredictionError, match="nope.jsonl: cannot read predictions file"):
        read_predictions(tmp_path / "nope.jsonl")


_DROP = object()


def _with(**changes) -> str:
    record = good_record("q2")
    for key, value in changes.items():
        if value is _DROP:
            del record[key]
        else:
            record[key] = value
    return json.dumps(record)


def _with_judgement(**changes) -> str:
    record = good_record("q2")
    for key, value in changes.items():
        if value is _DROP:
            del record["judgements"][1][key]
        else:
            record["judgements"][1][key] = value
    return json.dumps(record)  # Python writes NaN, which strict JSON does not have


MALFORMED = {
    "bad json": ('{"qid": "q2", "query": ', "not valid JSON"),
    "not an object": ("[1, 2]", "expected a JSON object"),
    "missing qid": (_with(qid=_DROP), "missing field(s) 'qid'"),
    "missing two fields": (_with(ranking=_DROP, judgements=_DROP), "missing field(s) 'ranking', 'judgements'"),
    "qid not a string": (_with(qid=7), "'qid' must be a string"),
    "empty qid": (_with(qid=""), "'qid' must be a non-empty string"),
    "query not a string": (_with(query=None), "'query' must be a string"),
    "ranking not a list": (_with(ranking="v1"), "'ranking' must be a list of video id strings"),
    "ranking of ints": (_with(ranking_turn1=[1, 2]), "'ranking_turn1' must be a list of video id strings"),
    "judgements empty": (_with(judgements=[]), "'judgements' must be a non-empty list"),
    "judgements not a list": (_with(judgements={"video": "v1"}), "'judgements' must be a non-empty list"),
    "judgement not an object": (_with(judgements=["matched"]), "'judgements[0]' must be a JSON object"),
    "judgement missing field": (_with_judgement(seconds=_DROP), "missing field(s) 'judgements[1].seconds'"),
    "video not a string": (_with_judgement(video=3), "'judgements[1].video' must be a string"),
    "unknown answer": (_with_judgement(answer="yes"), "'judgements[1].answer' must be one of matched, not_matched"),
    "span of one number": (_with_judgement(span=[1.0]), "'judgements[1].span' must be [start, end]"),
    "span with a string": (_with_judgement(span=[1.0, "2"]), "'judgements[1].span' must be [start, end]"),
    "span with a bool": (_with_judgement(span=[0, True]), "'judgements[1].span' must be [start, end]"),
    "span as text": (_with_judgement(span="1-2"), "'judgements[1].span' must be [start, end]"),
    "span with nan": (_with_judgement(span=[1.0, math.nan]), "'judgements[1].span' must be [start, end]"),
    "tokens not an int": (_with_judgement(generated_tokens=1.5), "'judgements[1].generated_tokens' must be"),
    "negative latent steps": (_with_judgement(latent_steps=-1), "'judgements[1].latent_steps' must be a non-neg"),
    "seconds as text": (_with_judgement(seconds="fast"), "'judgements[1].seconds' must be a non-negative"),
    "seconds as bool": (_with_judgement(seconds=True), "'judgements[1].seconds' must be a non-negative"),
    "duplicate qid": (json.dumps(good_record("q1")), "duplicate qid 'q1' (first on line 1)"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_every_defect_names_file_and_line(tmp_path, case):
    line, fragment = MALFORMED[case]
    path = tmp_path / "pred.jsonl"
    path.write_text(json.dumps(good_record("q1")) + "\n" + line + "\n" + json.dumps(good_record("q3")) + "\n")
    with pytest.raises(PredictionError) as info:
        read_predictions(path, allow_truncated_tail=True)
    assert str(info.value).startswith(f"{path}:2: ")
    assert fragment in str(info.value)
    assert isinstance(info.value, VideosearchError)
    assert (info.value.path, info.value.line) == (str(path), 2)


ODD_JSON_VALUES = {
    "int beyond float range": "1" + "0" * 400,  # OverflowError in math.isfinite before
    "5000-digit int": "7" * 5000,  # ValueError: over Python's int-string conversion limit
    "1e400": "1e400",
    "NaN": "NaN",
    "-Infinity": "-Infinity",
    "nested list": "[[[[[[[[1]]]]]]]]",
    "object": '{"a": 1}',
}
ODD_PLACES = {
    "seconds": ("judgements", 1, "seconds"),
    "span end": ("judgements", 1, "span"),
    "generated_tokens": ("judgements", 1, "generated_tokens"),
    "top-level extra": (None, None, "method"),
    "judgement extra": ("judgements", 0, "think"),
}


def _line_with_odd_value(place: str, odd: str) -> str:
    record = good_record("q2")
    container, index, key = ODD_PLACES[place]
    target = record if container is None else record[container][index]
    target[key] = [1.0, "@odd@"] if key == "span" else "@odd@"
    return json.dumps(record).replace('"@odd@"', odd)


@pytest.mark.parametrize("odd", sorted(ODD_JSON_VALUES))
@pytest.mark.parametrize("place", sorted(ODD_PLACES))
def test_odd_values_are_our_error_at_their_line_or_read_and_write_back(tmp_path, place, odd):
    path = tmp_path / "pred.jsonl"
    line = _line_with_odd_value(place, ODD_JSON_VALUES[odd])
    path.write_text(json.dumps(good_record("q1")) + "\n" + line + "\n" + json.dumps(good_record("q3")) + "\n")
    try:
        preds = read_predictions(path)
    except PredictionError as exc:
        assert str(exc).startswith(f"{path}:2: ") and len(str(exc)) < 300, exc
        return
    # Accepted only in an extra field, and only what JSON can store: a resumed run writes it back unchanged.
    assert "extra" in place and odd in ("int beyond float range", "nested list", "object"), (place, odd)
    write_predictions(path, preds)
    assert read_predictions(path) == preds


def test_deep_nesting_is_our_error_at_its_line(tmp_path):
    path = tmp_path / "pred.jsonl"
    deep = "[" * 100_000 + "]" * 100_000  # RecursionError in json.loads before
    for line in (deep, _line_with_odd_value("top-level extra", deep), "[" * 900 + "]" * 900):
        path.write_text(json.dumps(good_record("q1")) + "\n" + line + "\n")
        with pytest.raises(PredictionError, match=rf"^{re.escape(str(path))}:2: "):
            read_predictions(path)
