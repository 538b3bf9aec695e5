"""Kill tests' tools: run the `videosearch` command in a subprocess and SIGKILL it at a chosen moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
