"""Folders we write: refuse to replace what is not ours, fsync what we publish, swap folders in by rename.

A writer builds `.NAME.videosearch-tmp-PID` beside the target, fsyncs it and calls `swap_in`, which renames the
target aside to `.NAME.videosearch-old-PID` and the temporary folder in (names no user's backup would have).
A writer killed on the way leaves those siblings: `recover_swap` restores a target lost between the two renames,
`clean_leftovers` deletes what writers that no longer run left.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from videosearch.errors import VideosearchError

logger = logging.getLogger(__name__)


class FolderInUseError(VideosearchError):
    """An output path that holds something we did not write; replacing it would lose the user's files."""


def check_replaceable(folder: Path, marker: str, what: str) -> None:
    """Allow writing `folder` only if it is missing, empty, or a `what` we wrote (it holds `marker`)."""
    folder = Path(folder)
    if folder.is_symlink():  # the swap would replace the link by a folder and leave what it points to stale
        raise FolderInUseError(f"{folder} is a symbolic link: give the folder it points to, {folder.resolve()}")
    if not folder.exists():
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
    """Rename tmp to path; an existing path is renamed aside first and deleted after, with dead writers' leftovers."""
    if path.exists():
        old = aside_sibling(path)
        if old.exists():
            shutil.rmtree(old)
        os.rename(path, old)
        os.rename(tmp, path)
        fsync_dir(path.parent)
        shutil.rmtree(old)
    else:
        os.rename(tmp, path)
        fsync_dir(path.parent)
    clean_leftovers(path)  # now that `path` exists again, a dead writer's set-aside copy is no longer the only one


def publish_folder(path: Path, write: Callable[[Path], None]) -> None:
    """Build `path` anew: `write` fills a fresh `tmp_sibling`, which is fsynced and swapped in; on failure it goes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)  # dead writers' folders, and this process's from a failed earlier save
    tmp = tmp_sibling(path)
    tmp.mkdir()
    try:
        write(tmp)
        fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_in(tmp, path)


def tmp_sibling(path: Path, pid: int | None = None) -> Path:
    """The temporary folder process `pid` (this one by default) builds `path` in before `swap_in` publishes it."""
    return path.with_name(f".{path.name}.videosearch-tmp-{os.getpid() if pid is None else pid}")


def aside_sibling(path: Path, pid: int | None = None) -> Path:
    """Where `swap_in` of process `pid` (this one by default) sets the old `path` aside between its two renames."""
    return path.with_name(f".{path.name}.videosearch-old-{os.getpid() if pid is None else pid}")


def _leftovers(path: Path) -> list[tuple[str, Path, int]]:
    """(kind, folder, writer pid) of every `tmp_sibling` and `aside_sibling` of `path`."""
    pattern = rf"\.{re.escape(path.name)}\.videosearch-(tmp|old)-(\d+)"
    return [(match[1], sibling, int(match[2])) for match, sibling in siblings_matching(path, pattern)
            if sibling.is_dir() and not sibling.is_symlink()]


def siblings_matching(path: Path, pattern: str) -> list[tuple[re.Match[str], Path]]:
    """(match, entry) of every entry beside `path` whose whole name matches `pattern`, sorted by name."""
    if not path.parent.is_dir():
        return []
    compiled = re.compile(pattern)
    found = [(compiled.fullmatch(sibling.name), sibling) for sibling in path.parent.iterdir()]
    return sorted(((match, sibling) for match, sibling in found if match), key=lambda item: item[1].name)


def writer_running(pid: int) -> bool:
    """Whether another process with this id runs (our own id counts as not: we are the writer now)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(path: Path) -> None:
    """Delete the temporary and set-aside folders that writers of `path` which no longer run left behind.

    A set-aside folder is kept while `path` is missing: it is then the only copy (see `recover_swap`).
    """
    for kind, folder, pid in _leftovers(path):
        if writer_running(pid) or (kind == "old" and not path.exists()):
            continue
        logger.info("removing %s, left by an interrupted save", folder)
        shutil.rmtree(folder, ignore_errors=True)


def recover_swap(path: Path, marker: str) -> Path | None:
    """Finish a `swap_in` that a killed writer left between its two renames (`path` missing, its old copy aside).

    The writer's temporary folder was complete and fsynced before the first rename, so it is moved in when it
    holds `marker`; otherwise the set-aside folder is moved back. Returns the folder moved in, or None.
    """
    if path.exists() or path.is_symlink():
        return None
    aside = [(folder, pid) for kind, folder, pid in _leftovers(path)
             if kind == "old" and not writer_running(pid) and (folder / marker).is_file()]
    if not aside:
        return None
    old, pid = max(aside, key=lambda item: item[0].stat().st_mtime)
    tmp = tmp_sibling(path, pid)
    source = tmp if (tmp / marker).is_file() else old
    try:
        os.rename(source, path)
    except FileNotFoundError:
        if path.is_dir():  # another process restored it first
            return None
        raise
    fsync_dir(path.parent)
    logger.warning("an interrupted save left %s missing: restored it from %s", path, source)
    return source


def aside_copies(path: Path) -> list[Path]:
    """The copies of `path` that interrupted saves set aside, whoever wrote them."""
    return [folder for kind, folder, _ in _leftovers(path) if kind == "old"]


def saves_in_progress(path: Path) -> list[int]:
    """Ids of running processes that are writing `path` now."""
    return sorted({pid for _, _, pid in _leftovers(path) if writer_running(pid)})
