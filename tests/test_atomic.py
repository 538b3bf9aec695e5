"""Atomic text files: a writer killed before its rename leaves a temporary file that the next write removes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from videosearch.atomic import write_text_atomic

KILLED_AT_THE_RENAME = "import os, signal; os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
WRITERS = {
    "write_text_atomic": "from videosearch.atomic import write_text_atomic as w; w(path, 'text')",
    "write_predictions": "from videosearch.eval.predictions import write_predictions as w; w(path, [])",
    "write_sft_examples": "from videosearch.train.sft_data import write_sft_examples as w; w(path, [])",
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_the_next_write_removes_what_a_killed_writer_left(writer: str, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    code = f"import sys; path = sys.argv[1]\n{WRITERS[writer]}"
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_THE_RENAME + code, target], capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert not target.exists() and len(list(tmp_path.iterdir())) == 1, "the killed writer left its temporary file"
    subprocess.run([sys.executable, "-c", code, target], check=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"], "no temporary files left"


def test_only_temporary_files_of_writers_that_no_longer_run_are_removed(tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = [f".f.txt.tmp-{ended.pid}", f".f.txt.tmp-{running.pid}", f".g.txt.tmp-{ended.pid}", "f.txt.tmp-1x"]
        for name in names:
            (tmp_path / name).write_text("partial")
        write_text_atomic(tmp_path / "f.txt", "new")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["f.txt", *names[1:]])
        assert (tmp_path / "f.txt").read_text() == "new"
    finally:
        running.kill()
        running.wait()


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(tmp_path / "f.txt", "\ud800")
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"] and (tmp_path / "f.txt").read_text() == "old"
