"""Fixtures of the agent tests: a tiny random-weight mini policy over the shared engine, and a few test queries."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

from videosearch.corpus.annotations import read_moments
from videosearch.engine import SearchEngine
from videosearch.policy.policy import Policy, PolicyConfig


@pytest.fixture
def load_bench() -> Callable[[str], ModuleType]:
    """`bench/<name>.py` as a module: the benchmarks are scripts, not a package."""

    def load(name: str) -> ModuleType:
        path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"{name}_bench", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture
def policy(engine: SearchEngine) -> Policy:
    torch.manual_seed(0)
    return Policy.create(PolicyConfig(preset="tiny-mini", max_new_tokens=6, n_latents=3), engine.embedder).eval()


@pytest.fixture
def moments(small_world: Path) -> list:
    return read_moments(small_world / "test.jsonl").moments[:5]
