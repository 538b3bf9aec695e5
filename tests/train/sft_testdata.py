"""Helpers of the SFT tests, imported as `from sft_testdata import ...`."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def checkpoint_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every trained tensor of a checkpoint: the heads and the LoRA adapter."""
    return {**load_file(folder / "policy_heads.safetensors"),
            **{f"lora.{k}": v for k, v in load_file(folder / "adapter" / "adapter_model.safetensors").items()}}
