"""Shared fixtures: a small synthetic world, an untrained mini embedder, an engine over the world's videos."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from videosearch.cli.app import main
from videosearch.corpus.world import WorldConfig, generate_world
from videosearch.embed import MiniEmbedder
from videosearch.engine import SearchEngine

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# The suite fuzzes the same examples on every run, so that CI is red only for a change of ours; explore with
# `pytest --hypothesis-profile=explore` (new random examples each run).
settings.register_profile("suite", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False, database=None)
settings.load_profile("suite")


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `small` synthetic world, generated once per test session (a few seconds)."""
    return generate_world(tmp_path_factory.mktemp("world"), seed=3, config=WorldConfig.preset("small"), workers=1)


@pytest.fixture(scope="session")
def _mini_embedder() -> MiniEmbedder:
    torch.manual_seed(0)
    return MiniEmbedder()


@pytest.fixture
def mini_embedder(_mini_embedder: MiniEmbedder) -> MiniEmbedder:
    """An untrained mini embedder (real MiniLM text tower, random video tower); a private copy per test."""
    return copy.deepcopy(_mini_embedder)


@pytest.fixture
def engine(small_world: Path, _mini_embedder: MiniEmbedder) -> SearchEngine:
    """A fresh engine over the small world's test videos (the embedder is shared: engines never change it)."""
    engine, result = SearchEngine.build(small_world / "videos" / "test", _mini_embedder)
    assert not result.skipped
    return engine


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Callable[..., tuple[int, str, str]]:
    """Run `videosearch ARGS` in-process through the real entry point; returns (exit code, stdout, stderr)."""
    def run(*args: object) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["videosearch", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err
    return run


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kill-rounds", type=int, default=3, help="SIGKILL-and-resume rounds of each kill test.")


@pytest.fixture
def kill_rounds(request: pytest.FixtureRequest) -> int:
    """How many times a kill test kills its command at a random moment before letting it finish."""
    return int(request.config.getoption("--kill-rounds"))
