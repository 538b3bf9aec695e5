"""The whole recipe end to end at tiny size: every stage runs once, a second run skips them all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videosearch.errors import ConfigError
from videosearch.policy.policy import Policy
from videosearch.train.recipe import run_recipe

TINY = """
recipe: {{runs: {runs}, world_size: small, world_seed: 3, sft_examples: 8, family_negatives: 0.5,
         export: {export}}}
retriever: {{epochs: 1, batch_videos: 8, eval_every: 1,
            video_tower: {{frame_size: 16, channels: [8, 8, 8], feature_dim: 32, layers: 1, heads: 2}}}}
frame_encoder: {{epochs: 1, batch_size: 64, encoder: {{frame_size: 16, slot_dim: 8, scene_dim: 8}}}}
sft: {{batch_size: 4, save_every: 1, warmup_steps: 1, negatives: 4,
      policy: {{preset: tiny-mini, n_latents: 2, max_new_tokens: 20}}}}
refiner: {{epochs: 1, batch_size: 4, negatives: 4}}
grpo: {{steps: 1, group_size: 2, prompts_per_step: 1, lr: 0.001, warmup_steps: 0}}
"""


def test_the_recipe_runs_every_stage_once_and_exports_what_it_trained(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(runs=tmp_path / "runs", export=tmp_path / "ckpt"))
    times = run_recipe(config)
    assert list(times) == ["world", "retriever", "index train", "index val", "frame encoder", "SFT data", "SFT",
                           "calibration", "SQR-head world", "index SQR-head", "SQR-head turns", "SQR head", "GRPO",
                           "GRPO calibration", "SFT or GRPO", "export"]
    assert json.loads((tmp_path / "runs" / "recipe_times.json").read_text()) == times
    policy_dir = tmp_path / "ckpt" / "policy"
    saved = json.loads((policy_dir / "policy.json").read_text())
    assert saved["frame_encoder"] == "frame_encoder" and 0.0 <= saved["verdict_threshold"] <= 1.0
    choice = json.loads((tmp_path / "runs" / "grpo_choice.json").read_text())
    assert choice["chosen"] in ("SFT", "GRPO") and set(choice["figures"]) == {"SFT", "GRPO"}
    assert choice["GRPO - SFT"]["vr@1"]["delta"] == pytest.approx(
        choice["figures"]["GRPO"]["vr@1"] - choice["figures"]["SFT"]["vr@1"], abs=0.02)
    for name in ("adapter/adapter_model.safetensors", "policy_heads.safetensors", "policy.json"):
        assert (policy_dir / name).read_bytes() == (Path(choice["path"]) / name).read_bytes(), "the chosen ships"
    assert (policy_dir / "calibration.json").is_file() and (tmp_path / "ckpt" / "retriever" / "config.json").is_file()
    from videosearch.embed import load_embedder

    Policy.load(policy_dir, load_embedder(tmp_path / "ckpt" / "retriever"))  # the export loads on its own

    again = run_recipe(config)
    assert set(again) == set(times) and again["export"] >= 0  # complete stages are skipped, the export redone
    assert {k: v for k, v in again.items() if k != "export"} == {k: v for k, v in times.items() if k != "export"}


def test_a_bad_recipe_setting_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("recipe: {sft_examples: -1}\n")
    with pytest.raises(ConfigError, match="sft_examples"):
        run_recipe(config)
    config.write_text("recipe: {refine_turns: 0}\n")
    with pytest.raises(ConfigError, match="refine_turns"):
        run_recipe(config)
    config.write_text("recipe: {family_negatives: 2}\n")
    with pytest.raises(ConfigError, match="family_negatives must be in"):
        run_recipe(config)
    config.write_text("recipe: {world_seed: 4, refine_world_seed: 4}\n")
    with pytest.raises(ConfigError, match="refine_world_seed must differ"):
        run_recipe(config)
