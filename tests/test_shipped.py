"""The checkpoints that ship in the repository: small, safetensors only, and loadable as the CLI loads them."""

from __future__ import annotations

import pytest

from videosearch import shipped
from videosearch.embed import load_embedder
from videosearch.policy.policy import Policy

ROOT = shipped.REPO_ROOT / "checkpoints" / shipped.PRESET
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".pkl", ".ckpt")


@pytest.mark.skipif(not ROOT.is_dir(), reason="no shipped checkpoints in this tree")
def test_the_shipped_checkpoints_are_small_safetensors_that_load() -> None:
    files = [p for p in ROOT.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30 * 2**20, "at most 30 MB together"
    weights = [p for p in files if p.name.endswith(WEIGHT_SUFFIXES)]
    assert weights and all(p.suffix == ".safetensors" for p in weights), weights
    policy = Policy.load(shipped.shipped_policy(), load_embedder(shipped.shipped_retriever()))
    assert 0.0 < policy.config.verdict_threshold < 1.0, "calibrated on the val split"
