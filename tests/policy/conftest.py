"""Fixtures of the policy tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from videosearch.policy.policy import Policy


@pytest.fixture
def perturb() -> Callable[[Policy], None]:
    """LoRA B and the last SQR layer start at zero; random values make equality tests able to fail."""
    def randomise(policy: Policy) -> None:
        torch.manual_seed(0)
        with torch.no_grad():
            for name, param in policy.lm.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=0.05)
            policy.sqr.refine_projector[3].weight.normal_(std=0.02)
            policy.sqr.refine_hidden_centre.mean.normal_()
    return randomise
