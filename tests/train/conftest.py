"""Fixtures of the trainer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from videosearch.engine import SearchEngine
from videosearch.train.sft_data import build_world_sft_data, write_sft_examples


@pytest.fixture
def sft_inputs(small_world: Path, engine: SearchEngine, tmp_path: Path) -> tuple[Path, Path]:
    """Six SFT examples of the small world's test split and the index they were made with: (data, index)."""
    engine.save(tmp_path / "index")
    examples, _ = build_world_sft_data(small_world, tmp_path / "index", "test", seed=0, max_examples=6)
    write_sft_examples(tmp_path / "sft.jsonl", examples)
    return tmp_path / "sft.jsonl", tmp_path / "index"
