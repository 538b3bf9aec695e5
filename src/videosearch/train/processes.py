"""What the trainers share when `accelerate launch` (or torchrun) runs them on several processes.

Each process takes a share of every batch, its loss is already over the batch's global totals, and the
gradients are summed: N processes take the steps one process takes on the same data.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator

from videosearch.errors import VideosearchError


def sum_gradients(parameters: list[torch.nn.Parameter], accelerator: Accelerator) -> None:
    """Every process ends with the sum of all processes' gradients (a process without a share adds zeros)."""
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        parameter.grad.copy_(accelerator.reduce(parameter.grad, "sum"))


def check_same_weights(parameters: list[torch.nn.Parameter], accelerator: Accelerator) -> None:
    """Raise unless every process holds the same weights: summed gradients keep them so, a broken group does not."""
    checksums = accelerator.gather(torch.stack([p.detach().double().sum() for p in parameters]).sum()[None])
    if not torch.all(checksums == checksums[0]):
        raise VideosearchError(f"the {accelerator.num_processes} processes ended with different weights "
                               f"(checksums {checksums.tolist()}): a fault of ours or of the process group")
