"""Folders we write: refuse to replace what is not ours, fsync what we publish, swap folders in by rename."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from videosearch.errors import VideosearchError


class FolderInUseError(VideosearchError):
    """An output path that holds something we did not write; replacing it would lose the user's files."""


def check_replaceable(folder: Path, marker: str, what: str) -> None:
    """Allow writing `folder` only if it is missing, empty, or a `what` we wrote (it holds `marker`)."""
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return
    if not folder.is_dir():
        raise FolderInUseError(f"{folder} is a file, not a {what} folder: choose a new or empty folder")
    if (folder / marker).exists() or not any(folder.iterdir()):
        return
    raise FolderInUseError(f"{folder} is not empty and holds no {marker}, so it is not a {what}: "
                           "refusing to replace it; choose a new or empty folder")


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under root, so that a rename publishes data that is on disk."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def fsync_dir(path: Path) -> None:
    """fsync a directory, so the renames and new entries in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_in(tmp: Path, path: Path) -> None:
    """Rename tmp to path; an existing path is renamed aside first and deleted after."""
    if not path.exists():
        os.rename(tmp, path)
        fsync_dir(path.parent)
        return
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    os.rename(path, old)
    os.rename(tmp, path)
    fsync_dir(path.parent)
    shutil.rmtree(old)
