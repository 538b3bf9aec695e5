"""`videosearch eval`: the table, the JSON object, and one-line errors with exit code 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from videosearch.cli.app import app

ANNOTATIONS = [
    {"video": "v1", "time": [2, 6], "desc_id": 1, "duration": 10.0, "cog_desc": "c one", "fig_desc": "f one"},
    {"video": "v2", "time": [0, 4], "desc_id": 2, "duration": 8.0, "cog_desc": "c two", "fig_desc": "f two"},
]


def _judgement(video, answer, span, tokens, latent, seconds):
    keys = ("video", "answer", "span", "generated_tokens", "latent_steps", "seconds")
    return dict(zip(keys, (video, answer, span, tokens, latent, seconds)))


# Query 1: v1 at rank 2 then 1; rejects v2 (right), matches v1 (right) with [3, 7] vs [2, 6]: IoU 3/5.
# Query 2: v2 at rank 1; matches v2 (right) with [0, 2] vs [0, 4]: IoU 2/4.
PREDICTIONS = [
    {
        "qid": "1",
        "query": "f one",
        "ranking_turn1": ["v2", "v1"],
        "ranking": ["v1", "v2"],
        "judgements": [
            _judgement("v2", "not_matched", None, 5, 8, 0.5),
            _judgement("v1", "matched", [3, 7], 10, 0, 0.25),
        ],
        "method": "sqr",
    },
    {
        "qid": "2",
        "query": "f two",
        "ranking_turn1": ["v2", "v1"],
        "ranking": ["v2", "v1"],
        "judgements": [_judgement("v2", "matched", [0, 2], 6, 0, 0.25)],
    },
]

EXPECTED = {
    "n_queries": 2,
    "n_predicted": 2,
    "n_judgements": 3,
    "vr_turn1@1": 50.0,
    "vr_turn1@5": 100.0,
    "vr_turn1@10": 100.0,
    "vr_turn1@100": 100.0,
    "vr@1": 100.0,
    "vr@5": 100.0,
    "vr@10": 100.0,
    "vr@100": 100.0,
    "vcmr@0.3": 100.0,
    "vcmr@0.5": 100.0,
    "vcmr@0.7": 0.0,
    "miou": 55.0,  # (0.6 + 0.5) / 2
    "ver": 100.0,
    "mean_turns": 1.5,
    "generated_tokens": 10.5,  # (5 + 10 + 6) / 2
    "latent_steps": 4.0,
    "seconds_per_query": 0.5,  # (0.75 + 0.25) / 2
}


def _write_jsonl(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture
def files(tmp_path):
    return _write_jsonl(tmp_path / "pred.jsonl", PREDICTIONS), _write_jsonl(tmp_path / "ann.jsonl", ANNOTATIONS)


def _table_rows(output: str) -> dict[str, list[str]]:
    lines = [line for line in output.splitlines() if "│" in line]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.split("│")[1:-1]] for line in lines)}


def test_prints_the_table(files):
    pred, ann = files
    result = CliRunner().invoke(app, ["eval", "--pred", str(pred), "--annotations", str(ann)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "2 queries, 2 predicted" in result.output and "…" not in result.output
    rows = _table_rows(result.output)
    assert rows["VR R@1, turn 1"][0] == "50.0" and rows["VR R@100, turn 1"][0] == "100.0"
    assert [rows[f"VCMR R@1, IoU {m}"][0] for m in ("0.3", "0.5", "0.7")] == ["100.0", "100.0", "0.0"]
    assert rows["mIoU"][0] == "55.0" and rows["tokens / query"][0] == "10.5"
    assert rows["VR R@1, final"][1].startswith("[")  # one run: its interval beside the figure


def test_five_runs_read_whole_in_80_columns(files, tmp_path):
    pred, ann = files
    names = ["baseline", "oneshot", "hqr", "sqr", "refine_none"]
    paths = [_write_jsonl(tmp_path / f"{name}.jsonl", PREDICTIONS) for name in names]
    args = ["eval", *[arg for path in paths for arg in ("--pred", str(path))], "--annotations", str(ann)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output and max(len(line) for line in result.output.splitlines()) <= 80
    header = next(line for line in result.output.splitlines() if "┃ metric" in line)
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == ["metric", *names]
    rows = _table_rows(result.output)
    assert rows["VR R@1, turn 1"] == ["50.0"] * 5 and rows["seconds / query"] == ["0.500"] * 5
    assert "paired difference to baseline" in result.output


def test_prints_one_json_object(files):
    pred, ann = files
    result = CliRunner().invoke(app, ["eval", "--pred", str(pred), "--annotations", str(ann), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert {key: printed[key] for key in EXPECTED} == pytest.approx(EXPECTED)
    assert printed["vr@1_ci_low"] <= printed["vr@1"] <= printed["vr@1_ci_high"]


def test_several_runs_print_side_by_side(files):
    pred, ann = files
    result = CliRunner().invoke(app, ["eval", "--pred", str(pred), "--pred", str(pred), "--annotations", str(ann)])
    assert result.exit_code == 0, result.output
    assert "1:pred" in result.output and "2:pred" in result.output and "paired difference to 1:pred" in result.output


@pytest.mark.parametrize(("choice", "query", "iou"), [("auto", "1", "0.60"), ("2", "2", "0.50")])
def test_transcript_of_one_query(files, choice, query, iou):
    pred, ann = files
    args = ["eval", "--pred", str(pred), "--annotations", str(ann), "--transcript", choice]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output and max(len(line) for line in result.output.splitlines()) <= 80
    assert result.output.startswith(f"Query {query}") and "metric" not in result.output  # no table
    assert f"IoU {iou}" in result.output
    if choice == "auto":  # query 1 refined once and ended matched on the ground truth
        assert "Turn 1 · v2, not the ground truth" in result.output
        assert "Turn 2 · v1, the ground truth" in result.output


def test_transcript_takes_one_file_and_no_json(files, run_cli):
    pred, ann = files
    code, out, err = run_cli("eval", "--pred", pred, "--pred", pred, "--annotations", ann, "--transcript", "auto")
    assert code == 2 and "pass a single --pred" in err and out == ""
    code, out, err = run_cli("eval", "--pred", pred, "--annotations", ann, "--transcript", "1", "--json")
    assert code == 2 and "without --json" in err and out == ""


def test_json_writes_undefined_figures_as_null(files, tmp_path):
    _, ann = files
    empty = _write_jsonl(tmp_path / "empty.jsonl", [])
    result = CliRunner().invoke(
        app, ["eval", "--pred", str(empty), "--annotations", str(ann), "--json", "--query-field", "cog_desc"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n_predicted"] == 0 and metrics["vr@1"] == 0.0
    assert metrics["ver"] is None and metrics["seconds_per_query"] is None


BAD_ANSWER = {**PREDICTIONS[1], "judgements": [_judgement("v2", "yes", [0, 2], 6, 0, 0.25)]}


@pytest.mark.parametrize(
    ("pred_lines", "ann_lines", "extra_args", "message"),
    [
        ([PREDICTIONS[0], BAD_ANSWER], ANNOTATIONS, [], "pred.jsonl:2: 'judgements[0].answer' must be one of"),
        ([PREDICTIONS[0], '{"qid": '], ANNOTATIONS, [], "pred.jsonl:2: not valid JSON"),
        ([PREDICTIONS[0], {**PREDICTIONS[1], "qid": "77"}], ANNOTATIONS, [], "qids that are not in the annotations"),
        (PREDICTIONS, [ANNOTATIONS[0], '{"video": "v2"}'], [], "ann.jsonl:2: missing field"),
        (PREDICTIONS, ANNOTATIONS, ["--query-field", "nope"], "query_field='nope'"),
        (PREDICTIONS, ANNOTATIONS, ["--transcript", "9"], "no query with qid '9' in the predictions (2 queries"),
    ],
    ids=["bad answer", "bad json", "unknown qid", "bad annotation", "bad query field", "unknown transcript qid"],
)
def test_bad_input_exits_2_with_one_line(tmp_path, pred_lines, ann_lines, extra_args, message):
    pred = _write_jsonl(tmp_path / "pred.jsonl", pred_lines)
    ann = _write_jsonl(tmp_path / "ann.jsonl", ann_lines)
    result = _run_main(["eval", "--pred", str(pred), "--annotations", str(ann), *extra_args])
    assert result.returncode == 2
    assert message in result.stderr
    _assert_one_line(result)


def test_missing_option_exits_2_with_one_line(tmp_path):
    result = _run_main(["eval", "--annotations", str(tmp_path / "ann.jsonl")])
    assert result.returncode == 2
    assert "Missing option '--pred'" in result.stderr
    _assert_one_line(result)


def _run_main(args: list[str]) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).with_name("videosearch")  # the editable install's console script
    env = {**os.environ, "COLUMNS": "40"}  # a narrow terminal must not wrap the message
    return subprocess.run([str(executable), *args], capture_output=True, text=True, env=env, timeout=120)


def _assert_one_line(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""


def test_a_file_at_n_is_its_episodes_cut_after_turn_n(tmp_path):
    refined = json.loads(json.dumps(PREDICTIONS))
    refined[0]["judgements"][0].update({"ranking_after": ["v1", "v2"], "gt_rank_before": 2, "gt_rank_after": 1})
    pred, ann = _write_jsonl(tmp_path / "sqr.jsonl", refined), _write_jsonl(tmp_path / "ann.jsonl", ANNOTATIONS)
    result = CliRunner().invoke(app, ["eval", "--pred", f"{pred}@1", "--pred", str(pred), "--annotations", str(ann),
                                      "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["sqr@1"]["vr@1"] == 50.0 and printed["sqr@1"]["mean_turns"] == 1.0, "what a one-turn run writes"
    assert printed["sqr"]["vr@1"] == 100.0 and printed["sqr"]["mean_turns"] == 1.5
    result = CliRunner().invoke(app, ["eval", "--pred", f"{pred}@0", "--annotations", str(ann)])
    assert result.exit_code != 0
