"""evaluate() on a 3-query toy whose every figure is computed by hand, and format_table()."""

import dataclasses
import math
import re

import numpy as np
import pytest
from rich.console import Console

from videosearch.corpus.types import Moment
from videosearch.errors import VideosearchError
from videosearch.eval.predictions import Judgement, Prediction
from videosearch.eval.report import compare, evaluate, format_comparison, format_table, per_query_scores

MOMENTS = [
    Moment("q1", "first", "v1", 2.0, 6.0, 10.0),
    Moment("q2", "second", "v2", 0.0, 4.0, 8.0),
    Moment("q3", "third", "v3", 5.0, 9.0, 10.0),
]

# q1: v1 at rank 2 then rank 1; turn 1 rejects v4 (right), turn 2 matches v1 (right) with the reversed
#     span [6.5, 2.5] -> [2.5, 6.5]; against [2, 6]: overlap 3.5, union 4.5, IoU 7/9.
# q2: v2 at rank 5 then rank 1; turn 1 is unparsable (wrong), turn 2 matches v2 (right) with
#     [-2, 12] clamped to the 8 s video, [0, 8]; against [0, 4]: IoU 4/8 = 0.5.
# q3: v3 at rank 6 then rank 2; one turn matches v5 (wrong video, wrong judgement) with v3's exact span.
PREDICTIONS = [
    Prediction(
        "q1",
        "first",
        ["v4", "v1", "v5"],
        ["v1", "v4", "v5"],
        [Judgement("v4", "not_matched", None, 10, 8, 1.0), Judgement("v1", "matched", (6.5, 2.5), 20, 0, 0.5)],
    ),
    Prediction(
        "q2",
        "second",
        ["v5", "v4", "v3", "v1", "v2"],
        ["v2", "v5", "v4", "v3", "v1"],
        [Judgement("v5", "unparsable", None, 30, 0, 2.0), Judgement("v2", "matched", (-2.0, 12.0), 12, 8, 1.0)],
    ),
    Prediction(
        "q3",
        "third",
        ["v5", "v1", "v2", "v4", "v6", "v3"],
        ["v5", "v3"],
        [Judgement("v5", "matched", (5.0, 9.0), 15, 0, 0.5)],
    ),
]

EXPECTED = {
    "n_queries": 3,
    "n_predicted": 3,
    "n_judgements": 5,
    "vr_turn1@1": 0.0,  # ranks 2, 5, 6
    "vr_turn1@5": 200 / 3,  # rank 5 counts, rank 6 does not
    "vr_turn1@10": 100.0,
    "vr_turn1@100": 100.0,
    "vr@1": 200 / 3,  # ranks 1, 1, 2
    "vr@5": 100.0,
    "vr@10": 100.0,
    "vr@100": 100.0,
    "vcmr@0.3": 200 / 3,  # q1 (7/9) and q2 (0.5)
    "vcmr@0.5": 200 / 3,  # IoU 0.5 meets the 0.5 threshold
    "vcmr@0.7": 100 / 3,  # q1 only
    "miou": 100 * (7 / 9 + 0.5 + 0.0) / 3,
    "ver": 60.0,  # 3 of 5 judgements right
    "ver_balanced": 100 * (2 / 2 + 1 / 3) / 2,  # both ground-truth judgements right, 1 of 3 wrong-video ones
    "mean_turns": 5 / 3,  # 2 + 2 + 1
    "generated_tokens": 29.0,  # (10 + 20) + (30 + 12) + 15 = 87
    "latent_steps": 16 / 3,  # 8 + 8 + 0
    "seconds_per_query": 5 / 3,  # 1.5 + 3.0 + 0.5
}


def _known(result: dict) -> dict:
    """The figures of EXPECTED; bootstrap intervals are checked on their own."""
    return {key: result[key] for key in EXPECTED}


def test_toy_every_metric_by_hand():
    result = evaluate(PREDICTIONS, MOMENTS)
    assert [key for key in result if "_ci_" not in key] == list(EXPECTED)
    assert _known(result) == pytest.approx(EXPECTED)
    assert isinstance(result["n_queries"], int)
    for key in ("vr@1", "vcmr@0.5"):
        assert 0.0 <= result[f"{key}_ci_low"] <= result[key] <= result[f"{key}_ci_high"] <= 100.0


def test_query_without_prediction_is_a_miss_and_adds_no_judgement_or_cost():
    moments = [*MOMENTS, Moment("q4", "fourth", "v4", 0.0, 1.0, 5.0)]
    result = evaluate(PREDICTIONS, moments)
    assert (result["n_queries"], result["n_predicted"], result["n_judgements"]) == (4, 3, 5)
    assert result["vr@1"] == pytest.approx(50.0)  # 2 of 4
    assert result["vr_turn1@100"] == pytest.approx(75.0)
    assert result["vcmr@0.3"] == pytest.approx(50.0)
    assert result["miou"] == pytest.approx(100 * (7 / 9 + 0.5) / 4)
    for key in ("ver", "mean_turns", "generated_tokens", "latent_steps", "seconds_per_query"):
        assert result[key] == pytest.approx(EXPECTED[key])


def test_no_predictions_at_all():
    result = evaluate([], MOMENTS)
    assert result["n_predicted"] == 0
    assert result["vr@100"] == 0.0 and result["vcmr@0.3"] == 0.0 and result["miou"] == 0.0
    for key in ("ver", "mean_turns", "generated_tokens", "latent_steps", "seconds_per_query"):
        assert math.isnan(result[key])


def test_per_query_scores_are_aligned_with_the_annotations():
    scores = per_query_scores(list(reversed(PREDICTIONS)), MOMENTS, ks=(1,), ious=(0.7,))
    assert list(scores) == ["vr_turn1@1", "vr@1", "vcmr@0.7", "miou"]
    np.testing.assert_array_equal(scores["vr@1"], [True, True, False])
    np.testing.assert_array_equal(scores["vcmr@0.7"], [True, False, False])
    np.testing.assert_allclose(scores["miou"], [7 / 9, 0.5, 0.0])


def test_custom_cut_offs_and_thresholds_name_the_keys():
    result = evaluate(PREDICTIONS, MOMENTS, ks=(2,), ious=(0.25,))
    assert result["vr@2"] == pytest.approx(100.0)
    assert result["vr_turn1@2"] == pytest.approx(100 / 3)
    assert result["vcmr@0.25"] == pytest.approx(200 / 3)


def test_unknown_qids_mean_the_wrong_annotation_file():
    strangers = [dataclasses.replace(PREDICTIONS[0], qid=f"x{i}") for i in range(7)]
    with pytest.raises(VideosearchError, match=r"7 of 10 predictions .*'x0', 'x1'.*2 more.*annotation file"):
        evaluate(PREDICTIONS + strangers, MOMENTS)
    assert _known(evaluate(PREDICTIONS + strangers, MOMENTS, ignore_unknown_qids=True)) == pytest.approx(EXPECTED)


def test_duplicate_and_empty_inputs_are_errors():
    with pytest.raises(VideosearchError, match="annotations repeat qid"):
        evaluate(PREDICTIONS, [*MOMENTS, MOMENTS[0]])
    with pytest.raises(VideosearchError, match="several predictions share qid"):
        evaluate([*PREDICTIONS, PREDICTIONS[1]], MOMENTS)
    with pytest.raises(VideosearchError, match="no queries"):
        evaluate(PREDICTIONS, [])


def _render(renderable, width: int = 80) -> str:
    console = Console(record=True, width=width)
    console.print(renderable)
    return console.export_text()


def _cells(text: str) -> list[list[str]]:
    """The table rows of rendered text, a first cell wrapped over several lines joined again."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if "│" not in line:
            continue
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if rows and not any(cells[1:]):  # the wrapped rest of the row above's label
            rows[-1][0] += " " + cells[0]
        else:
            rows.append(cells)
    return rows


def _rows(text: str) -> dict[str, list[str]]:
    """The table rows of rendered text as first cell -> the other cells."""
    return {row[0]: row[1:] for row in _cells(text)}


def _assert_whole(text: str, width: int = 80) -> None:
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= width


def test_format_table_shows_every_figure_whole_in_80_columns():
    text = _render(format_table(evaluate(PREDICTIONS, MOMENTS)))
    _assert_whole(text)
    assert "3 queries, 3 predicted" in text
    rows = _rows(text)
    for label in ("VR R@1, final", "VCMR R@1, IoU 0.5"):
        value, interval = rows.pop(label)
        assert re.fullmatch(r"\[\d+\.\d, \d+\.\d\]", interval), interval
        rows[label] = [value]
    assert rows == {
        "VR R@1, turn 1": ["0.0", ""],
        "VR R@5, turn 1": ["66.7", ""],
        "VR R@10, turn 1": ["100.0", ""],
        "VR R@100, turn 1": ["100.0", ""],
        "VR R@1, final": ["66.7"],
        "VR R@5, final": ["100.0", ""],
        "VR R@10, final": ["100.0", ""],
        "VR R@100, final": ["100.0", ""],
        "VCMR R@1, IoU 0.3": ["66.7", ""],
        "VCMR R@1, IoU 0.5": ["66.7"],
        "VCMR R@1, IoU 0.7": ["33.3", ""],
        "VER": ["60.0", ""],
        "VER, balanced": ["66.7", ""],
        "mIoU": ["42.6", ""],
        "turns / query": ["1.67", ""],
        "tokens / query": ["29.0", ""],
        "latent steps / query": ["5.3", ""],
        "seconds / query": ["1.667", ""],
    }


def test_format_table_writes_undefined_figures_as_na():
    text = _render(format_table(evaluate([], MOMENTS)))
    assert "3 queries, 0 predicted" in text
    rows = _rows(text)
    assert rows["VER"][0] == rows["turns / query"][0] == rows["seconds / query"][0] == "n/a"
    assert rows["VR R@1, final"][0] == "0.0"


# (row label, metric key, decimals) of the figures table
FIGURES = [
    *[(f"VR R@{k}, turn 1", f"vr_turn1@{k}", 1) for k in (1, 5, 10, 100)],
    *[(f"VR R@{k}, final", f"vr@{k}", 1) for k in (1, 5, 10, 100)],
    *[(f"VCMR R@1, IoU {m}", f"vcmr@{m}", 1) for m in (0.3, 0.5, 0.7)],
    ("VER", "ver", 1), ("VER, balanced", "ver_balanced", 1), ("mIoU", "miou", 1), ("turns / query", "mean_turns", 2),
    ("tokens / query", "generated_tokens", 1), ("latent steps / query", "latent_steps", 1),
    ("seconds / query", "seconds_per_query", 3),
]


def _five_runs() -> dict[str, list[Prediction]]:
    rejecting = [dataclasses.replace(p, judgements=[dataclasses.replace(j, answer="not_matched", span=None)
                                                    for j in p.judgements]) for p in PREDICTIONS]
    return {
        "baseline": PREDICTIONS,
        "oneshot": [dataclasses.replace(p, ranking=["nowhere"]) for p in PREDICTIONS],
        "hqr": PREDICTIONS[:2],  # a run that stopped early: its own count of predicted queries
        "sqr": [dataclasses.replace(p, judgements=p.judgements[-1:]) for p in PREDICTIONS],
        "refine_none": rejecting,
    }


@pytest.mark.parametrize("n_runs", [2, 5])
def test_comparison_shows_every_figure_whole_in_80_columns(n_runs):
    runs = dict(list(_five_runs().items())[:n_runs])
    results = compare(runs, MOMENTS)
    text = _render(format_comparison(results))
    _assert_whole(text)
    figures_text, intervals_text = text.split("95 % bootstrap intervals over queries; Δ: paired difference to")
    figures = _rows(figures_text)
    for label, key, digits in FIGURES:
        assert figures.pop(label) == [f"{results[name][key]:.{digits}f}" for name in runs], label
    if n_runs == 5:
        assert figures.pop("predicted") == ["3", "3", "2", "3", "3"]
        assert "3 queries" in figures_text and "predicted" not in figures_text.splitlines()[0]
    else:
        assert "3 queries, 3 predicted" in figures_text
    assert not figures  # no other rows
    cells = _cells(intervals_text)
    assert [row[0] for row in cells] == ["VR R@1", *[""] * (n_runs - 1), "VCMR R@1, IoU 0.5", *[""] * (n_runs - 1)]
    for row, key in zip(cells, [k for k in ("vr@1", "vcmr@0.5") for _ in range(n_runs)]):
        name, value, interval, delta, delta_interval = row[1:]
        m = results[name]
        assert value == f"{m[key]:.1f}"
        assert interval == f"[{m[key + '_ci_low']:.1f}, {m[key + '_ci_high']:.1f}]"
        if name == "baseline":
            assert delta == delta_interval == "-"
        else:
            assert delta == f"{m['delta_' + key]:+.1f}"
            assert delta_interval == f"[{m['delta_' + key + '_ci_low']:.1f}, {m['delta_' + key + '_ci_high']:.1f}]"


def test_compare_gives_paired_differences_to_the_first_run():
    worse = [dataclasses.replace(p, ranking=["nowhere"]) for p in PREDICTIONS]
    results = compare({"a": PREDICTIONS, "same": PREDICTIONS, "worse": worse}, MOMENTS)
    assert "delta_vr@1" not in results["a"]
    assert results["same"]["delta_vr@1"] == results["same"]["delta_vr@1_ci_low"] == 0.0
    delta = results["worse"]["vr@1"] - results["a"]["vr@1"]
    assert results["worse"]["delta_vr@1"] == pytest.approx(delta) and delta < 0
    assert results["worse"]["delta_vr@1_ci_low"] <= delta <= results["worse"]["delta_vr@1_ci_high"] <= 0.0
    text = _render(format_comparison(results))
    assert "paired difference to a" in text and "worse" in text


def test_long_run_names_wrap_at_their_separators_instead_of_being_cut():
    names = ["policy-none-t3", "policy-hqr-t3", "policy-sqr-t3", "oracle-sqr-t3", "oracle-oracle-t3"]
    results = compare(dict.fromkeys(names, PREDICTIONS), MOMENTS)
    text = _render(format_comparison(results))
    _assert_whole(text)
    figures_text = text.split("95 % bootstrap intervals")[0]
    header = [[cell.strip() for cell in line.split("┃")[1:-1]] for line in figures_text.splitlines() if "┃" in line]
    assert ["".join(column) for column in zip(*header)] == ["metric", *names]
    assert ["policy-", "none-t3"] == [row[1] for row in header if row[1]]  # broken after a separator
    assert _rows(figures_text)["VR R@100, final"] == ["100.0"] * 5
    assert "oracle-oracle-" in text.split("95 % bootstrap intervals")[1]
