"""Kill tests' tools: run the `videosearch` command in a subprocess and SIGKILL it at a chosen moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

VIDEOSEARCH = str(Path(sys.executable).with_name("videosearch"))


def run_videosearch(*args: object, cwd: Path | None = None, timeout_s: float = 600) -> subprocess.CompletedProcess:
    """Run `videosearch ARGS` to the end; fails the test with its stderr if it does not exit 0."""
    proc = subprocess.run([VIDEOSEARCH, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout_s)
    assert proc.returncode == 0, f"videosearch {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}"
    return proc


def kill_when(command: list[str], until: Callable[[], bool], *, cwd: Path | None = None, timeout_s: float = 600,
              poll_s: float = 0.01) -> bool:
    """Start `command` in its own process group, call `until()` every `poll_s` seconds while it runs and SIGKILL the
    group once it returns True; True if the command finished first.

    Its stderr goes to a temporary file, not a pipe, so a command that writes much there never blocks on it. The
    test fails, with the end of that stderr, if the command exits other than 0 or runs past `timeout_s`.
    """
    give_up, timed_out = time.monotonic() + timeout_s, False
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr, text=True,
                                start_new_session=True)
        try:
            while proc.poll() is None and not until():
                timed_out = time.monotonic() > give_up
                if timed_out:
                    break
                time.sleep(poll_s)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        stderr.seek(0)
        tail = stderr.read()[-4000:]
    name = Path(command[0]).name
    assert not timed_out, f"{name} ran past {timeout_s} s:\n{tail}"
    if proc.returncode == -signal.SIGKILL:
        return False
    assert proc.returncode == 0, f"{name} exited {proc.returncode} before the kill:\n{tail}"
    return True


def kill_videosearch_after(delay_s: float, *args: object, cwd: Path | None = None) -> bool:
    """Start `videosearch ARGS`, SIGKILL its process group after `delay_s`; True if it had already finished."""
    deadline = time.monotonic() + delay_s
    return kill_when([VIDEOSEARCH, *map(str, args)], lambda: time.monotonic() >= deadline, cwd=cwd, poll_s=0.02)


def kill_videosearch_when(path: Path, lines: int, extra_s: float, *args: object, cwd: Path | None = None,
                          timeout_s: float = 600) -> bool:
    """Start `videosearch ARGS`, SIGKILL its process group `extra_s` after it has written `path` (a log, a
    predictions file) to `lines` lines: a kill in the middle of the work, whatever the start-up takes. True if it
    finished first."""
    started_ns = time.time_ns()
    deadline = None

    def written() -> bool:
        nonlocal deadline
        if (deadline is None and path.exists() and path.stat().st_mtime_ns >= started_ns
                and path.read_bytes().count(b"\n") >= lines):
            deadline = time.monotonic() + extra_s
        return deadline is not None and time.monotonic() >= deadline

    return kill_when([VIDEOSEARCH, *map(str, args)], written, cwd=cwd, timeout_s=timeout_s)
