"""The shipped presets load into their config dataclasses; the paper preset holds the paper's settings."""

from __future__ import annotations

from pathlib import Path

from videosearch.config import load_config
from videosearch.embed import Qwen3VLEmbedderConfig
from videosearch.train.grpo import GRPOConfig
from videosearch.train.rewards import RewardWeights
from videosearch.train.sft import SFTConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_the_paper_preset_has_the_papers_settings() -> None:
    sft = load_config(SFTConfig, CONFIGS / "paper.yaml", "sft")
    assert (sft.lr, sft.heads_lr, sft.infonce_weight, sft.tau, sft.negatives) == (2e-5, 5e-5, 0.3, 0.1, 24)
    assert sft.policy.preset == "paper" and sft.policy.lora_r == 0 and sft.policy.n_latents == 8
    assert sft.policy.max_frames == 64
    embedder = load_config(Qwen3VLEmbedderConfig, CONFIGS / "paper.yaml", "embedder")
    assert embedder.max_frames == 64 and embedder.fps == 1.0 and embedder.dim == 0
    grpo = load_config(GRPOConfig, CONFIGS / "paper.yaml", "grpo")
    assert (grpo.group_size, grpo.kl_weight, grpo.clip, grpo.max_turns, grpo.latent_noise) == (8, 0.01, 0.2, 1, 0.0)
    assert grpo.rewards == RewardWeights(answer=1.6, think=0.05, time=0.05, iou=0.35, refine=0.10, refine_quality=0.8)


def test_the_mini_preset_loads() -> None:
    sft = load_config(SFTConfig, CONFIGS / "mini.yaml", "sft")
    assert sft.policy.preset == "mini" and sft.policy.lora_r > 0
    assert load_config(GRPOConfig, CONFIGS / "mini.yaml", "grpo").rewards == RewardWeights()
