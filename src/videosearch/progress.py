"""Progress bars for long work, on stderr so that stdout stays clean for `--json` output."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import Progress
from rich.progress import track as rich_track

T = TypeVar("T")
console = Console(stderr=True)


def track(sequence: Iterable[T], description: str, total: float | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr."""
    yield from rich_track(sequence, description=description, total=total, console=console, transient=True)


def progress() -> Progress:
    """A `rich.progress.Progress` on stderr, for work that is not one loop."""
    return Progress(console=console, transient=True)
