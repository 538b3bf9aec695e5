"""The claim experiment at tiny size: every row at every turn limit, intervals, paired differences, the table and
the plot; a rerun resumes the predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.eval.claim import ClaimConfig, run_claim
from videosearch.policy.policy import Policy, PolicyConfig


@pytest.fixture
def claim_config(engine: SearchEngine, small_world: Path, tmp_path: Path) -> ClaimConfig:
    engine.save(tmp_path / "index")
    for seed, name in ((0, "sft"), (1, "grpo")):
        torch.manual_seed(seed)
        Policy.create(PolicyConfig(preset="tiny-mini", n_latents=2, max_new_tokens=20), engine.embedder).save(
            tmp_path / name)
    return ClaimConfig(index=str(tmp_path / "index"), annotations=str(small_world / "test.jsonl"),
                       out=str(tmp_path / "claim"), policies={"SFT": str(tmp_path / "sft"),
                                                              "GRPO": str(tmp_path / "grpo")},
                       max_turns=2, oracle_steps=2, limit=6)


def test_every_row_at_every_turn_limit_with_intervals_table_and_plot(claim_config: ClaimConfig) -> None:
    result = run_claim(claim_config)
    assert list(result["rows"]) == ["search", "one-shot", "walk", "HQR", "SQR SFT", "SQR GRPO", "oracle latents"]
    for by_turn in result["rows"].values():
        assert list(by_turn) == ["1", "2"]
        for figures in by_turn.values():
            assert figures["vr@1_ci_low"] <= figures["vr@1"] <= figures["vr@1_ci_high"]
            assert {"vcmr@0.3", "vcmr@0.5", "vcmr@0.7", "generated_tokens", "latent_steps"} <= figures.keys()
    assert result["rows"]["one-shot"]["1"] == result["rows"]["one-shot"]["2"] == result["rows"]["SQR SFT"]["1"]
    assert result["rows"]["search"]["1"]["generated_tokens"] == 0
    paired = result["paired"]["SQR GRPO"]["2"]
    assert set(paired) == {"vr@1 - one-shot", "vcmr@0.5 - one-shot", "vr@1 - walk", "vcmr@0.5 - walk"}
    sqr, walk = result["rows"]["SQR GRPO"]["2"]["vr@1"], result["rows"]["walk"]["2"]["vr@1"]
    assert paired["vr@1 - walk"]["delta"] == pytest.approx(sqr - walk, abs=1e-6)
    out = Path(claim_config.out)
    saved = json.loads((out / "claim.json").read_text())
    assert saved["queries"] == 6 and set(saved["rows"]) == set(result["rows"])
    table = (out / "claim.md").read_text()
    assert "| SQR GRPO | 2 |" in table and "| oracle latents | 1 |" in table
    assert (out / "claim.png").stat().st_size > 5000
    again = run_claim(claim_config)  # every prediction file is complete: nothing runs again
    for name, by_turn in result["rows"].items():
        for turns, figures in by_turn.items():
            assert {k: figures[k] for k in ("vr@1", "vcmr@0.5", "generated_tokens")} == {
                k: again["rows"][name][turns][k] for k in ("vr@1", "vcmr@0.5", "generated_tokens")}
    assert again["seconds"] < result["seconds"]


def test_a_claim_without_its_inputs_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs `index`"):
        run_claim(ClaimConfig(out=str(tmp_path)))
    with pytest.raises(ConfigError, match="policies must map names"):
        ClaimConfig(policies=["a"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_turns"):
        ClaimConfig(max_turns=0)
