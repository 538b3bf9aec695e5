"""The Soft Query Refinement head: from the policy's hidden state at `<REFINE>` to latents for the embedder.

Shapes: H = the policy LM's hidden width, D = the latent width, He = the embedder's input-embedding width.
    z_1 = refine_projector(h_REFINE)                         # (B, D)
    next input embedding = refine_latent_input_projector(z)  # (B, H), fed back for z_2 ... z_N
    latents for the embedder = refine_append_input_projector(z_1..z_N)   # (B, N, He)
The names, layers and initialisations follow the reference release so checkpoints map one to one: the
last layer of `refine_projector` starts at zero (every z is 0 at first), the two input projectors start
as a (partial) identity.
"""

from __future__ import annotations

import torch
from torch import nn


def _partial_identity_(linear: nn.Linear) -> nn.Linear:
    """W[i, i] = 1 for i < min(in, out), every other weight and the bias 0."""
    with torch.no_grad():
        linear.weight.zero_()
        n = min(linear.in_features, linear.out_features)
        linear.weight[torch.arange(n), torch.arange(n)] = 1.0
        linear.bias.zero_()
    return linear


class SQRHead(nn.Module):
    """The four SQR modules, stored in a policy checkpoint under these names."""

    def __init__(self, hidden_dim: int, latent_dim: int, embedder_dim: int) -> None:
        super().__init__()
        last = nn.Linear(latent_dim, latent_dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.refine_projector = nn.Sequential(
            nn.Linear(hidden_dim, latent_dim), nn.LayerNorm(latent_dim), nn.GELU(), last)
        self.refine_latent_input_projector = nn.Sequential(
            nn.LayerNorm(latent_dim), _partial_identity_(nn.Linear(latent_dim, hidden_dim)))
        self.refine_append_input_projector = nn.Sequential(
            nn.LayerNorm(latent_dim), _partial_identity_(nn.Linear(latent_dim, embedder_dim)))
        self.query_embedder_head: nn.Module = (
            nn.Identity() if embedder_dim == latent_dim else nn.Linear(embedder_dim, latent_dim))

    def latent(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, H) final-norm hidden state -> (B, D) latent."""
        return self.refine_projector(hidden)

    def feed_back(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, D) latent -> (B, H) input embedding of the next latent step."""
        return self.refine_latent_input_projector(latent)

    def to_embedder(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, N, D) latents -> (B, N, He) vectors inserted into the embedder's input sequence."""
        return self.refine_append_input_projector(latents)
