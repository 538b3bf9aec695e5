"""`bench/gpu.py --cpu`: the GPU benchmark's measurements run end to end at reduced size, one JSON line out."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import pytest


def test_the_gpu_bench_runs_at_reduced_size(load_bench: Callable, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    bench = load_bench("gpu")
    monkeypatch.setattr(sys, "argv", ["gpu.py", "--cpu", "--batches", "1", "2"])
    bench.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("sqr_cached_8_latents_s", "sqr_reference_7_reprefills_s", "hqr_27_tokens_s", "queries_per_s",
                "videos_per_s_with_segments", "episodes_per_s_batch1", "episodes_per_s_batch2",
                "agent_speedup_best_batch_vs_1"):
        assert result[key] > 0, key
    assert result["device"] == "cpu"
