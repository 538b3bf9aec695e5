"""videosearch: find the right moment in a large collection of videos from a sentence."""

__version__ = "0.1.0"
