"""Errors a user can cause and fix; the CLI prints them as one line instead of a traceback."""


class VideosearchError(Exception):
    """Base of every error caused by user input (files, arguments, configs)."""


class VideoReadError(VideosearchError):
    """A video file is missing, empty, truncated or not a video."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class AnnotationError(VideosearchError):
    """A malformed annotation line or record; names `file:line` and what is wrong."""

    def __init__(self, path: object, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class IndexMismatchError(VideosearchError):
    """A vector store opened with an embedder of another model or dimension."""


class ConfigError(VideosearchError, ValueError):
    """A config field has a bad value; the message names the field and the fix."""
