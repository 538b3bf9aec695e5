"""Fixtures of the agent tests: a tiny random-weight mini policy over the shared engine, and a few test queries."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videosearch.corpus.annotations import read_moments
from videosearch.engine import SearchEngine
from videosearch.policy.policy import Policy, PolicyConfig


@pytest.fixture
def policy(engine: SearchEngine) -> Policy:
    torch.manual_seed(0)
    return Policy.create(PolicyConfig(preset="tiny-mini", max_new_tokens=6, n_latents=3), engine.embedder).eval()


@pytest.fixture
def moments(small_world: Path) -> list:
    return read_moments(small_world / "test.jsonl").moments[:5]
