from __future__ import annotations

import pytest

from videosearch.policy.format import format_output, parse_output


def test_round_trip_of_a_match_with_a_span() -> None:
    text = format_output("the red circle moves left, as asked", True, (3.0, 7.5))
    parsed = parse_output(text)
    assert parsed.answer == "matched" and parsed.span_s == (3.0, 7.5)
    assert parsed.has_think and parsed.has_time and parsed.has_refine
    assert parsed.think == "the red circle moves left, as asked"


def test_not_matched_has_no_span() -> None:
    parsed = parse_output(format_output("the circle is blue, not red", False))
    assert parsed.answer == "not_matched" and parsed.span_s is None and parsed.has_refine


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<think>hmm</think>",
        "<answer>maybe</answer>",
        "<answer>matched",
        "<think>x</think> <answer> </answer> <REFINE>",
        "\x00\x01<answer>not matched</answer>",
    ],
)
def test_garbled_outputs_are_unparsable_never_a_crash(text: str) -> None:
    assert parse_output(text).answer == "unparsable"


def test_tolerant_reading() -> None:
    parsed = parse_output("<answer> Matched </answer><start> 2 </start><end>5.25</end>")
    assert parsed.answer == "matched" and parsed.span_s == (2.0, 5.25) and not parsed.has_think
    assert parse_output("<answer>matched</answer><start>x</start><end>5</end>").span_s is None


def test_hqr_turn_carries_the_rewrite_and_no_refine_token() -> None:
    parsed = parse_output(format_output("the circle is blue", False, rewrite="In the park, the red circle jumps."))
    assert parsed.answer == "not_matched" and parsed.rewrite == "In the park, the red circle jumps."
    assert not parsed.has_refine
    matched = parse_output(format_output("as asked", True, (1.0, 2.0), rewrite="unused"))
    assert matched.rewrite is None and matched.span_s == (1.0, 2.0)
    assert parse_output("<answer>not_matched</answer> <query> </query>").rewrite is None
