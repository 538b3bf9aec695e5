"""The policy's output grammar, parsed in exactly one place.

    <think>...</think><answer>matched|not_matched</answer>[<start>S</start><end>E</end>]<REFINE>

The reasoning comes first, as in the reference release: it restates the query in the words of the video's event
log and says what differs, so the verdict after it is a comparison of two texts the policy has just read and
written, not a judgement made at the prompt's last position (which a 135M LM did not learn: DESIGN.md section 8).
The verdict is a probability read at the position after `<answer>` (see `Policy.generate`). The hard-refinement
baseline (HQR) ends a `not_matched` turn with the rewritten query as text instead:
`<think>...</think><answer>not_matched</answer><query>...</query>`. Each tag is one special token of the policy
(`TAG_TOKENS`). Parsing is tolerant and reads the tags in any order: a missing or garbled tag makes the answer
`unparsable`; it never raises.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

REFINE_TOKEN = "<REFINE>"
ANSWERS = ("matched", "not_matched")
ANSWER_OPEN = "<answer>"
THINK_CLOSE = "</think>"
TAG_TOKENS = (ANSWER_OPEN, "</answer>", "<start>", "</start>", "<end>", "</end>", "<think>", "</think>", "<query>",
              "</query>")

_THINK = re.compile(r"<think>(.*?)</think>", re.S)
_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.S)
_START = re.compile(r"<start>\s*([-+]?\d+(?:\.\d+)?)\s*</start>")
_END = re.compile(r"<end>\s*([-+]?\d+(?:\.\d+)?)\s*</end>")
_QUERY = re.compile(r"<query>(.*?)</query>", re.S)


@dataclass(frozen=True)
class ParsedOutput:
    """What one policy turn said: its answer, the span on a match (seconds), and format flags for rewards."""

    answer: str  # "matched", "not_matched" or "unparsable"
    span_s: tuple[float, float] | None
    think: str
    has_think: bool
    has_time: bool
    has_refine: bool
    rewrite: str | None = None  # HQR: the rewritten query, when the turn wrote one


def parse_output(text: str) -> ParsedOutput:
    """Read a completion; the first well-formed tag of each kind counts."""
    think = _THINK.search(text)
    answer_match = _ANSWER.search(text)
    answer = answer_match.group(1).strip().lower() if answer_match else ""
    if answer not in ANSWERS:
        answer = "unparsable"
    start, end = _START.search(text), _END.search(text)
    rewrite = _QUERY.search(text)
    span = None
    if start and end:
        a, b = float(start.group(1)), float(end.group(1))
        if math.isfinite(a) and math.isfinite(b):
            span = (a, b)
    return ParsedOutput(answer=answer, span_s=span if answer == "matched" else None,
                        think=think.group(1).strip() if think else "", has_think=think is not None,
                        has_time=span is not None, has_refine=REFINE_TOKEN in text,
                        rewrite=(rewrite.group(1).strip() or None) if rewrite else None)


def format_output(think: str, matched: bool, span_s: tuple[float, float] | None = None,
                  rewrite: str | None = None) -> str:
    """The target text of one turn (SFT), the exact inverse of `parse_output`; `rewrite` makes it an HQR turn."""
    text = f"<think>{think}</think>{ANSWER_OPEN}{'matched' if matched else 'not_matched'}</answer>"
    if matched and span_s is not None:
        text += f"<start>{span_s[0]:.1f}</start><end>{span_s[1]:.1f}</end>"
    if rewrite is not None:
        return text if matched else f"{text}<query>{rewrite}</query>"
    return f"{text}{REFINE_TOKEN}"
