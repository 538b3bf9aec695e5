"""Tests for videosearch.corpus.annotations: every format, malformed input, round-trips, real files."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from videosearch.corpus.annotations import Annotations, read_moments, write_verified
from videosearch.corpus.types import Moment
from videosearch.errors import AnnotationError, ConfigError, VideosearchError

VERIFIED_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "verified"
_DROP = object()  # a field value meaning "leave the field out"


def _verified_line(**overrides: object) -> str:
    record = {
        "video": "TAQ25", "time": [11.6, 17.7], "desc_id": 65, "duration": 28.0,
        "cog_desc": "the person closes the laptop screen.",
        "fig_desc": "The person closes the laptop screen in a room with a closet full of clothes.",
        "fig_desc_score": 0.39,
    }
    record.update(overrides)
    return json.dumps({k: v for k, v in record.items() if v is not _DROP})


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# VERIFIED


def test_verified_golden(tmp_path: Path) -> None:
    second = _verified_line(video="G30NS", time=[2.5, 10.6], desc_id=365, duration=37.5, fig_desc=" A box. ")
    path = _write(tmp_path / "fig.jsonl", _verified_line() + "\n\n   \n" + second + "\n")
    annotations = read_moments(path)
    assert isinstance(annotations, Annotations)
    assert len(annotations) == 2 and annotations.skipped == []
    assert list(annotations) == [
        Moment("65", "The person closes the laptop screen in a room with a closet full of clothes.", "TAQ25",
               11.6, 17.7, 28.0),
        Moment("365", "A box.", "G30NS", 2.5, 10.6, 37.5),
    ]


def test_verified_cog_desc_query(tmp_path: Path) -> None:
    path = _write(tmp_path / "fig.jsonl", _verified_line() + "\n")
    [moment] = read_moments(path, query_field="cog_desc")
    assert moment.query == "the person closes the laptop screen."


def test_unknown_query_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "fig.jsonl", _verified_line() + "\n")
    with pytest.raises(ConfigError, match="fig_desc"):
        read_moments(path, query_field="caption")


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"video": "X", "time": [1, 2],', "invalid JSON"),
        (_verified_line(video=_DROP), "missing field 'video'"),
        (_verified_line(fig_desc=_DROP), "missing field 'fig_desc'"),
        (_verified_line(time="1-2"), "'time' must be"),
        (_verified_line(time=[1.0]), "'time' must be"),
        (_verified_line(time=[1.0, True]), "'time' must be"),
        (_verified_line(duration="28"), "'duration'"),
        (_verified_line(duration=0), "'duration'"),
        (_verified_line(desc_id=[1]), "'desc_id'"),
        (_verified_line(time=[5.0, 3.0]), "start 5.0 > end 3.0"),
        (_verified_line(time=[-1.0, 3.0]), "negative"),
        (_verified_line(fig_desc="  "), "'fig_desc' must be a non-empty string"),
        (_verified_line(video=7), "'video' must be a non-empty string"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_verified_malformed_line_names_file_and_line(tmp_path: Path, bad_line: str, reason: str) -> None:
    path = _write(tmp_path / "fig.jsonl", _verified_line() + "\n" + bad_line + "\n" + _verified_line() + "\n")
    with pytest.raises(AnnotationError) as info:
        read_moments(path)
    assert str(info.value).startswith(f"{path}:2: ")
    assert reason in str(info.value)
    assert info.value.line == 2
    assert isinstance(info.value, VideosearchError)


def test_skip_bad_counts_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = [_verified_line(), "not json", _verified_line(time=[3, 1]), "", _verified_line(desc_id=66)]
    path = _write(tmp_path / "fig.jsonl", "\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="videosearch.corpus.annotations"):
        annotations = read_moments(path, skip_bad=True)
    assert [m.qid for m in annotations] == ["65", "66"]
    assert [number for number, _ in annotations.skipped] == [2, 3]
    assert "start 3.0 > end 1.0" in annotations.skipped[1][1]
    assert "skipped 2 malformed" in caplog.text


def test_non_utf8_line(tmp_path: Path) -> None:
    path = tmp_path / "fig.jsonl"
    path.write_bytes(_verified_line().encode() + b"\n\xff\xfe\n")
    with pytest.raises(AnnotationError, match=r":2: not UTF-8"):
        read_moments(path)
    assert len(read_moments(path, skip_bad=True).skipped) == 1


# Charades-STA


CHARADES_TEXT = (
    "AO8RW 0.0 6.9##a person is putting a book on a shelf.\n"
    "\n"
    "Y6R7T 20.8 30.0##person begins to play on a phone.\n"
)


def test_charades_golden_with_and_without_durations(tmp_path: Path) -> None:
    path = _write(tmp_path / "charades_sta_test.txt", CHARADES_TEXT)
    first, second = read_moments(path)
    assert (first.qid, first.video_id, first.start_s, first.end_s) == ("1", "AO8RW", 0.0, 6.9)
    assert first.query == "a person is putting a book on a shelf."
    assert math.isnan(first.duration_s)
    assert (second.qid, second.video_id, second.start_s, second.end_s) == ("3", "Y6R7T", 20.8, 30.0)
    assert second.query == "person begins to play on a phone."
    assert math.isnan(second.duration_s)
    with_durations = read_moments(path, durations={"AO8RW": 33.67, "Y6R7T": 31.0})
    assert [m.duration_s for m in with_durations] == [33.67, 31.0]


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("AO8RW 0.0 6.9 a person sits.", "expected 'video start end##sentence'"),
        ("AO8RW 0.0##a person sits.", "expected 'video start end##sentence'"),
        ("AO8RW zero 6.9##a person sits.", "must be numbers"),
        ("AO8RW 0.0 6.9##   ", "empty"),
        ("AO8RW 7.0 6.9##a person sits.", "start 7.0 > end 6.9"),
        ("AO8RW -1 6.9##a person sits.", "negative"),
    ],
)
def test_charades_malformed_line(tmp_path: Path, bad_line: str, reason: str) -> None:
    path = _write(tmp_path / "sta.txt", "AO8RW 0.0 6.9##ok.\n" + bad_line + "\n")
    with pytest.raises(AnnotationError, match=f"^{path}:2: .*{reason}"):
        read_moments(path)
    assert len(read_moments(path, skip_bad=True)) == 1


# DiDeMo


DIDEMO_RECORDS = [
    {"annotation_id": 11, "video": "v1.mp4", "description": "the dog jumps",
     "times": [[2, 2], [2, 3], [1, 1], [2, 3]]},
    {"video": "v2", "description": "a car passes", "times": [[1, 1], [0, 0]], "duration": 24.5},
]


def test_didemo_golden(tmp_path: Path) -> None:
    path = _write(tmp_path / "didemo_test.json", json.dumps(DIDEMO_RECORDS))
    annotations = read_moments(path)
    assert list(annotations) == [
        Moment("11", "the dog jumps", "v1.mp4", 10.0, 20.0, 30.0),  # [2, 3] is the most frequent pair
        Moment("2", "a car passes", "v2", 5.0, 10.0, 24.5),  # a tie goes to the first pair; qid = record 2
    ]
    assert list(read_moments(path, fmt="didemo")) == list(annotations)


@pytest.mark.parametrize(
    ("bad_record", "reason"),
    [
        ({"video": "v", "description": "x"}, "missing field 'times'"),
        ({"video": "v", "description": "x", "times": []}, "'times' must be a non-empty list"),
        ({"video": "v", "description": "x", "times": [[1, 0]]}, "0 <= first <= last"),
        ({"video": "v", "description": "x", "times": [[0.5, 1]]}, "segment index pairs"),
        ({"video": "v", "description": "", "times": [[0, 1]]}, "'description'"),
        ("just text", "expected a JSON object"),
    ],
)
def test_didemo_malformed_record(tmp_path: Path, bad_record: object, reason: str) -> None:
    path = _write(tmp_path / "didemo.json", json.dumps([DIDEMO_RECORDS[0], bad_record]))
    with pytest.raises(AnnotationError, match=f"^{path}:2: .*{reason}"):
        read_moments(path)
    annotations = read_moments(path, skip_bad=True)
    assert len(annotations) == 1 and annotations.skipped[0][0] == 2


# ActivityNet Captions


ACTIVITYNET = {
    "v_QOlSCBRmfWY": {
        "duration": 82.73,
        "timestamps": [[0.83, 19.86], [17.37, 60.81]],
        "sentences": ["A young woman is seen standing in a room. ", " She then begins dancing."],
    },
    "v_ehGHCYKzyZ8": {"duration": 61.72, "timestamps": [[0, 7.41]], "sentences": ["Two men are seen."]},
}


def test_activitynet_golden(tmp_path: Path) -> None:
    path = _write(tmp_path / "val_1.json", json.dumps(ACTIVITYNET))
    assert list(read_moments(path)) == [
        Moment("v_QOlSCBRmfWY#0", "A young woman is seen standing in a room.", "v_QOlSCBRmfWY", 0.83, 19.86, 82.73),
        Moment("v_QOlSCBRmfWY#1", "She then begins dancing.", "v_QOlSCBRmfWY", 17.37, 60.81, 82.73),
        Moment("v_ehGHCYKzyZ8#0", "Two men are seen.", "v_ehGHCYKzyZ8", 0.0, 7.41, 61.72),
    ]


def test_activitynet_malformed(tmp_path: Path) -> None:
    data = dict(ACTIVITYNET)
    data["v_bad"] = {"duration": 10.0, "timestamps": [[0, 1], [5, 2]], "sentences": ["fine.", "reversed."]}
    data["v_short"] = {"duration": 10.0, "timestamps": [[0, 1]], "sentences": ["a.", "b."]}
    path = _write(tmp_path / "anet.json", json.dumps(data))
    with pytest.raises(AnnotationError, match=rf"^{path}:3: video 'v_bad': 'timestamps\[1\]' has start 5.0 > end 2.0"):
        read_moments(path)
    annotations = read_moments(path, skip_bad=True)
    assert [m.qid for m in annotations][-1] == "v_bad#0"
    assert [number for number, _ in annotations.skipped] == [3, 4]
    assert "same length" in annotations.skipped[1][1]


# Formats, files


def test_json_decode_error_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "broken.json", '[\n{"video": "v",\n')
    with pytest.raises(AnnotationError, match=rf"^{path}:\d+: invalid JSON"):
        read_moments(path)


def test_explicit_format_with_the_wrong_top_level(tmp_path: Path) -> None:
    path = _write(tmp_path / "anet.json", json.dumps(ACTIVITYNET))
    with pytest.raises(AnnotationError, match="JSON list"):
        read_moments(path, fmt="didemo")


def test_unknown_format_names_the_allowed_values(tmp_path: Path) -> None:
    path = _write(tmp_path / "fig.jsonl", _verified_line() + "\n")
    with pytest.raises(ConfigError, match="verified, charades, didemo, activitynet"):
        read_moments(path, fmt="csv")
    csv_path = _write(tmp_path / "fig.csv", "a,b\n")
    with pytest.raises(VideosearchError, match="fmt="):
        read_moments(csv_path)


def test_explicit_format_ignores_the_extension(tmp_path: Path) -> None:
    path = _write(tmp_path / "queries.data", CHARADES_TEXT)
    assert len(read_moments(path, fmt="charades")) == 2


# Odd values: each is an AnnotationError naming file:line, which skip_bad leaves out.

ODD_JSON_VALUES = {
    "int beyond float range": "1" + "0" * 400,  # OverflowError in float() / math.isfinite
    "5000-digit int": "7" * 5000,  # ValueError: over Python's int-string conversion limit
    "1e400": "1e400",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "nested list": "[[[[[[[[1]]]]]]]]",
    "string": '"12"',
    "object": '{"a": 1}',
    "true": "true",
    "null": "null",
}
_ODD = '"@odd@"'  # stands in the JSON text for the raw odd value


def _lines_with_odd_value(fmt: str, odd: str) -> tuple[str, str]:
    """(file name, text) with a good entry, one holding `odd` (entry 2), and another good entry."""
    if fmt == "verified":
        lines = [_verified_line(), _verified_line(desc_id=66, duration="@odd@"), _verified_line(desc_id=67)]
        return "fig.jsonl", "\n".join(lines).replace(_ODD, odd) + "\n"
    if fmt == "verified-time":
        lines = [_verified_line(), _verified_line(desc_id=66, time=[1, "@odd@"]), _verified_line(desc_id=67)]
        return "fig.jsonl", "\n".join(lines).replace(_ODD, odd) + "\n"
    if fmt == "didemo":
        bad = {"video": "v", "description": "x", "times": [[0, "@odd@"]]}
        return "didemo.json", json.dumps([DIDEMO_RECORDS[0], bad, DIDEMO_RECORDS[1]]).replace(_ODD, odd)
    if fmt == "didemo-duration":
        bad = {"video": "v", "description": "x", "times": [[0, 1]], "duration": "@odd@"}
        return "didemo.json", json.dumps([DIDEMO_RECORDS[0], bad, DIDEMO_RECORDS[1]]).replace(_ODD, odd)
    assert fmt == "activitynet"
    videos = list(ACTIVITYNET.items())
    data = {videos[0][0]: videos[0][1], "v_odd": {"duration": 10, "timestamps": [["@odd@", 2]], "sentences": ["s"]},
            videos[1][0]: videos[1][1]}
    return "anet.json", json.dumps(data).replace(_ODD, odd)


@pytest.mark.parametrize("odd", sorted(ODD_JSON_VALUES))
@pytest.mark.parametrize("fmt", ["verified", "verified-time", "didemo", "didemo-duration", "activitynet"])
def test_odd_json_values_are_our_error_at_their_line(tmp_path: Path, fmt: str, odd: str) -> None:
    name, text = _lines_with_odd_value(fmt, ODD_JSON_VALUES[odd])
    path = _write(tmp_path / name, text)
    with pytest.raises(AnnotationError) as info:
        read_moments(path)
    assert str(info.value).startswith(f"{path}:2: "), info.value
    assert len(str(info.value)) < 300  # a huge value is shortened in the message
    annotations = read_moments(path, skip_bad=True)
    assert [number for number, _ in annotations.skipped] == [2]
    assert len(annotations) == (3 if fmt == "activitynet" else 2)  # ActivityNet: 2 sentences + 1


def test_huge_int_desc_id_is_a_valid_qid_and_a_5000_digit_one_is_not(tmp_path: Path) -> None:
    huge, too_long = "1" + "0" * 400, "7" * 5000
    lines = [_verified_line(desc_id="@odd@").replace(_ODD, value) for value in (huge, too_long)]
    path = _write(tmp_path / "fig.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=rf"^{path}:2: field 'desc_id' must be .*<an integer of 5000 digits>"):
        read_moments(path)
    assert [m.qid for m in read_moments(path, skip_bad=True)] == [huge]


@pytest.mark.parametrize("value", ["1e400", "nan", "inf", "-inf", "Infinity", "9" * 5000])
def test_charades_odd_numbers_are_our_error(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path / "sta.txt", f"AO8RW 0.0 6.9##ok.\nAO8RW 0.0 {value}##odd.\nAO8RW 1.0 2.0##ok.\n")
    with pytest.raises(AnnotationError, match=rf"^{path}:2: "):
        read_moments(path)
    assert [number for number, _ in read_moments(path, skip_bad=True).skipped] == [2]


def test_deep_nesting_names_the_line(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000  # deeper than json's recursion limit: RecursionError before
    lines = [_verified_line(), _verified_line(desc_id=66, time="@odd@").replace(_ODD, deep), _verified_line(desc_id=6)]
    path = _write(tmp_path / "fig.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=rf"^{path}:2: invalid JSON \(nested too deeply"):
        read_moments(path)
    assert len(read_moments(path, skip_bad=True)) == 2
    # A whole-file JSON format cannot be read past it, with or without skip_bad: the line of the deepest point.
    path = _write(tmp_path / "didemo.json", json.dumps(DIDEMO_RECORDS, indent=1).replace("[\n", "[\n" + deep, 1))
    for skip_bad in (False, True):
        with pytest.raises(AnnotationError, match=rf"^{path}:2: invalid JSON \(nested too deeply"):
            read_moments(path, skip_bad=skip_bad)


def test_half_a_surrogate_pair_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "fig.jsonl", _verified_line() + "\n" + _verified_line(desc_id=66, video="v\ud800") + "\n")
    with pytest.raises(AnnotationError, match=rf"^{path}:2: the video id .* holds half of a surrogate pair"):
        read_moments(path)
    assert len(read_moments(path, skip_bad=True)) == 1


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.jsonl"
    with pytest.raises(AnnotationError, match="no such annotation file") as info:
        read_moments(path)
    assert str(path) in str(info.value)


# write_verified


def test_write_verified_round_trips(tmp_path: Path) -> None:
    moments = [
        Moment("7", "a red square enters from the left", "world_0001", 1.0, 2.5, 8.0),
        Moment("q-3", "the blue circle grows", "world_0002", 0.0, 4.0, 6.0),
        Moment("007", "a triangle turns green", "world_0002", 3.5, 6.0, 6.0),
    ]
    path = tmp_path / "test.jsonl"
    extra = {"7": {"cog_desc": "a square enters", "fig_desc_score": 1.5, "event_index": 0}}
    write_verified(path, moments, extra=extra)
    assert [p.name for p in tmp_path.iterdir()] == ["test.jsonl"]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["desc_id"] == 7 and lines[1]["desc_id"] == "q-3" and lines[2]["desc_id"] == "007"
    assert lines[0]["time"] == [1.0, 2.5] and lines[0]["event_index"] == 0
    annotations = read_moments(path)
    assert list(annotations) == moments and annotations.skipped == []
    assert read_moments(path, query_field="cog_desc").moments[0].query == "a square enters"


def test_write_verified_round_trips_a_qid_of_more_digits_than_int_reads(tmp_path: Path) -> None:
    path = _write(tmp_path / "fig.jsonl", _verified_line(desc_id="7" * 5000) + "\n")  # a string desc_id
    moments = read_moments(path).moments
    write_verified(tmp_path / "again.jsonl", moments)  # int("7" * 5000) raised ValueError here
    assert read_moments(tmp_path / "again.jsonl").moments == moments


def test_write_verified_rejects_core_overrides_and_nan(tmp_path: Path) -> None:
    moment = Moment("1", "q", "v", 0.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="may not set"):
        write_verified(tmp_path / "a.jsonl", [moment], extra={"1": {"time": [0, 2]}})
    with pytest.raises(ValueError, match="duration_s must be finite"):
        write_verified(tmp_path / "a.jsonl", [Moment("1", "q", "v", 0.0, 1.0, math.nan)])
    assert list(tmp_path.iterdir()) == []


# The real VERIFIED files


@pytest.mark.parametrize(
    ("name", "count"),
    [("charades_fig_test", 3720), ("charades_fig_train", 12408), ("didemo_fig_test", 4013)],
)
def test_real_verified_files(name: str, count: int) -> None:
    path = VERIFIED_DIR / f"{name}.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared data folder is not next to the repository)")
    annotations = read_moments(path)
    assert len(annotations) == count
    assert annotations.skipped == []
    assert len({m.qid for m in annotations}) == count
    assert all(0.0 <= m.start_s <= m.end_s and m.duration_s > 0 and m.query for m in annotations)
    assert len(read_moments(path, query_field="cog_desc")) == count
