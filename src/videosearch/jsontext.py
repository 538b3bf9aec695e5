"""Parse JSON text from user files so that odd values reach the caller's validation, not a raw exception.

`json.loads` raises RecursionError on deep nesting and ValueError on integers longer than Python
converts (4300 digits); both bypass a reader's `file:line` errors. `loads` reports deep nesting as a
`json.JSONDecodeError` at the deepest point and keeps over-long integers as `TooLongInteger`, which
no field check accepts as a number.

Example:
    record = loads('{"duration": 1' + "0" * 5000 + '}')  # {'duration': <an integer of 5001 digits>}
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON string (skipped, since brackets inside it do not nest) or one bracket.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class TooLongInteger:
    """An integer literal with more digits than Python converts; stands in for it so a field check rejects it."""

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))

    def __repr__(self) -> str:
        return f"<an integer of {self.digits} digits>"


def loads(text: str) -> Any:
    """`json.loads`, with deep nesting as a JSONDecodeError and over-long integers as TooLongInteger.

    Raises:
        json.JSONDecodeError: the text is not JSON, or nests deeper than Python's parser can go.
    """
    try:
        return json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, _deepest_position(text)) from None


def _parse_int(text: str) -> int | TooLongInteger:
    try:
        return int(text)
    except ValueError:  # over sys.get_int_max_str_digits()
        return TooLongInteger(text)


def _deepest_position(text: str) -> int:
    """Offset of the first bracket at the greatest nesting depth, outside strings."""
    depth = deepest = position = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        bracket = match.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > deepest:
                deepest, position = depth, match.start()
        elif bracket in ("]", "}"):
            depth -= 1
    return position
