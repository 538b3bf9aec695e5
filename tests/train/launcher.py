"""Run a `videosearch` command on one process or on several (torchrun, gloo on loopback), as the tests of
multi-process training do; imported as `from launcher import run_processes`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(args: list[str], processes: int) -> None:
    """`videosearch *args` on `processes` processes; fails the test with the command's stderr if it fails."""
    cli = str(Path(sys.executable).with_name("videosearch"))
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                 "--master_addr", "127.0.0.1", "--master_port", str(_free_port())] if processes > 1 else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, cli, *args], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
