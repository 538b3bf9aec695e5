"""The video search engine: query -> ranked videos with their best segment; HTTP server and client."""

from videosearch.engine.engine import Hit, SearchEngine, SkippedVideo

__all__ = ["Hit", "SearchEngine", "SkippedVideo"]
