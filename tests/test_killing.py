"""The kill tests' own tool: a command that writes much to stderr never blocks it, and nothing waits forever."""

from __future__ import annotations

import sys
import time

import pytest
from killing import kill_when

CHATTY = "import sys, time; sys.stderr.write('x' * 1_000_000); sys.stderr.flush(); time.sleep({sleep_s})"


def test_a_command_that_writes_a_megabyte_to_stderr_runs_to_the_end() -> None:
    assert kill_when([sys.executable, "-c", CHATTY.format(sleep_s=0)], lambda: False, timeout_s=60)


def test_a_command_that_writes_a_megabyte_to_stderr_is_killed_when_asked() -> None:
    deadline = time.monotonic() + 1
    assert not kill_when([sys.executable, "-c", CHATTY.format(sleep_s=60)], lambda: time.monotonic() >= deadline,
                         timeout_s=60)


def test_a_failure_before_the_kill_shows_the_end_of_stderr() -> None:
    with pytest.raises(AssertionError, match="exited 1 before the kill:\n.*the reason"):
        kill_when([sys.executable, "-c", "import sys; sys.exit('x' * 100_000 + ' the reason')"], lambda: False)


def test_a_command_that_runs_too_long_fails_the_test() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match="ran past 1 s"):
        kill_when([sys.executable, "-c", "import time; time.sleep(60)"], lambda: False, timeout_s=1)
    assert time.monotonic() - started < 30
