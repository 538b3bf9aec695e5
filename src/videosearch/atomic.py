"""Whole text files written atomically: a `.NAME.tmp-PID` file beside the target, fsynced, then `os.replace`.

A writer killed before the rename leaves its temporary file; the next write of the same target deletes those of
writers that no longer run, so a kill leaves nothing behind for long.

Example:
    write_text_atomic(Path("runs/world/world.json"), json.dumps(manifest))
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from videosearch.folders import fsync_dir, siblings_matching, writer_running

logger = logging.getLogger(__name__)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace `path` with `text` (UTF-8) so that a reader, or a kill, sees the old file or the new one, never part.

    Args:
        path: the file to write; its directory must exist.
        text: the whole new content.
    """
    path = Path(path)
    remove_stale_tmp_files(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # same directory, so os.replace is atomic
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def remove_stale_tmp_files(path: Path) -> None:
    """Delete the `.NAME.tmp-PID` files beside `path` whose writers no longer run (killed before their rename)."""
    for match, sibling in siblings_matching(path, rf"\.{re.escape(path.name)}\.tmp-(\d+)"):
        if not writer_running(int(match[1])) and not sibling.is_dir():
            logger.info("removing %s, left by an interrupted write", sibling)
            sibling.unlink(missing_ok=True)
