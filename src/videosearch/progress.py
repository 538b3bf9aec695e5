"""Progress bars for long work, on stderr so that stdout stays clean for `--json` output."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import Progress
from rich.progress import track as rich_track

T = TypeVar("T")
console = Console(stderr=True)


def track(sequence: Iterable[T], description: str, total: float | None = None, visible: bool = True) -> Iterator[T]:
    """Iterate with a progress bar on stderr (none when not `visible`: a process other than the main one)."""
    yield from rich_track(sequence, description=description, total=total, console=console, transient=True,
                          disable=not visible)


def progress() -> Progress:
    """A `rich.progress.Progress` on stderr, for work that is not one loop."""
    return Progress(console=console, transient=True)
