"""Kill tests' tools: run the `videosearch` command in a subprocess and SIGKILL it at a chosen moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VIDEOSEARCH = str(Path(sys.executable).with_name("videosearch"))


def run_videosearch(*args: object, cwd: Path | None = None, timeout_s: float = 600) -> subprocess.CompletedProcess:
    """Run `videosearch ARGS` to the end; fails the test with its stderr if it does not exit 0."""
    proc = subprocess.run([VIDEOSEARCH, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout_s)
    assert proc.returncode == 0, f"videosearch {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}"
    return proc


def kill_videosearch_after(delay_s: float, *args: object, cwd: Path | None = None) -> bool:
    """Start `videosearch ARGS`, SIGKILL its process group after `delay_s`; True if it had already finished."""
    proc = subprocess.Popen([VIDEOSEARCH, *map(str, args)], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + delay_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr else ""
            assert proc.returncode == 0, f"videosearch exited {proc.returncode} before the kill:\n{stderr}"
            return True
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.stderr:
        proc.stderr.close()
    return False


def kill_videosearch_when(path: Path, lines: int, extra_s: float, *args: object, cwd: Path | None = None,
                          timeout_s: float = 600) -> bool:
    """Start `videosearch ARGS`, SIGKILL its process group `extra_s` after it has written `path` (a log, a
    predictions file) to `lines` lines: a kill in the middle of the work, whatever the start-up takes. True if it
    finished first."""
    started_ns = time.time_ns()
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: a chatty command never blocks on it
        proc = subprocess.Popen([VIDEOSEARCH, *map(str, args)], cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr,
                                text=True, start_new_session=True)
        deadline, give_up = None, time.monotonic() + timeout_s
        while proc.poll() is None:
            if (deadline is None and path.exists() and path.stat().st_mtime_ns >= started_ns
                    and path.read_bytes().count(b"\n") >= lines):
                deadline = time.monotonic() + extra_s
            if (deadline is not None and time.monotonic() >= deadline) or time.monotonic() > give_up:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                assert time.monotonic() <= give_up, f"videosearch ran past {timeout_s} s"
                return False
            time.sleep(0.01)
        stderr.seek(0)
        assert proc.returncode == 0, f"videosearch exited {proc.returncode} before the kill:\n{stderr.read()}"
        return True
