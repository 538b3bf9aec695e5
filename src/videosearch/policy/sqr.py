"""The Soft Query Refinement head: from the policy's hidden state at `<REFINE>` to latents for the embedder.

Shapes: H = the policy LM's hidden width, D = the latent width, He = the embedder's input-embedding width.
    z_1 = refine_projector(h_REFINE - refine_hidden_centre.mean[0])    # (B, D); z_t reads the t-th step's hidden state
    next input embedding = refine_latent_input_projector(z)  # (B, H), fed back for z_2 ... z_N
    latents for the embedder = refine_append_input_projector(z_1..z_N)   # (B, N, He)
    q' = normalize(q + g (embed_text_with_latents(query, latents) - q))  # refine_gate: g starts at 0
The module names and layers follow the reference release, so its checkpoints map one to one. Three starts differ,
each because the reference's fails to learn (measured in the agent issue): the last layer of `refine_projector`
starts small and random, not at zero (a zero z enters the input projectors' LayerNorm where its gradient
explodes); the input projectors start as a (partial) identity scaled to the norm of the embeddings of the space
they feed, not to LayerNorm's unit variance; and the refined query starts as the original one (`refine_gate` at 0:
inserting latents into the embedder's sequence moves the query vector even when they say nothing), so
refinement can only add to it.

One addition: the head reads each hidden state minus its mean at that rollout position (`refine_hidden_centre`, a
buffer the SQR-head stage fits; zeros, the reference's behaviour, until then). The LM's final hidden states share
one dominant direction: across queries their mean pairwise cosine is 0.987 at `<REFINE>` and 0.99 at the latent
steps, 0.005-0.04 once centred, so without it every query got the same latents.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LAST_LAYER_STD = 0.02


def _scaled_identity_(linear: nn.Linear, scale: float) -> nn.Linear:
    """W[i, i] = scale for i < min(in, out), every other weight and the bias 0."""
    with torch.no_grad():
        linear.weight.zero_()
        n = min(linear.in_features, linear.out_features)
        linear.weight[torch.arange(n), torch.arange(n)] = scale
        linear.bias.zero_()
    return linear


class RefineGate(nn.Module):
    """q' = normalize(q + g (f - q)): how far the refined vector f moves the original query q; g starts at 0."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, original: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
        """(B, D) unit vectors q and f -> (B, D) unit vectors q'."""
        mixed = original + self.weight.to(refined.device, refined.dtype) * (refined - original.to(refined.dtype))
        return nn.functional.normalize(mixed, dim=-1)


class HiddenCentre(nn.Module):
    """The mean hidden state at each rollout position, subtracted before the head reads it; zeros = no centring."""

    def __init__(self, n_latents: int, hidden_dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_latents, hidden_dim))

    def forward(self, hidden: torch.Tensor, position: int) -> torch.Tensor:
        return hidden - self.mean[position].to(hidden.dtype)

    @torch.no_grad()
    def track(self, hidden: torch.Tensor, momentum: float) -> None:
        """Move the means towards those of (B, N, H) hidden states read at the N positions (momentum 1 replaces)."""
        self.mean.lerp_(hidden.mean(0).to(self.mean.dtype), momentum)


class SQRHead(nn.Module):
    """The SQR modules, stored in a policy checkpoint under these names."""

    def __init__(self, hidden_dim: int, latent_dim: int, embedder_dim: int, hidden_norm: float = 1.0,
                 embedder_norm: float = 1.0, n_latents: int = 8) -> None:
        """`hidden_norm` / `embedder_norm`: typical norms of the LM's and the embedder's input embeddings."""
        super().__init__()
        self.refine_hidden_centre = HiddenCentre(n_latents, hidden_dim)
        last = nn.Linear(latent_dim, latent_dim)
        nn.init.normal_(last.weight, std=LAST_LAYER_STD)
        nn.init.zeros_(last.bias)
        self.refine_projector = nn.Sequential(
            nn.Linear(hidden_dim, latent_dim), nn.LayerNorm(latent_dim), nn.GELU(), last)
        # LayerNorm outputs have norm ~sqrt(D): scaled so the fed-back and the inserted vectors look like tokens
        unit = 1.0 / math.sqrt(latent_dim)
        self.refine_latent_input_projector = nn.Sequential(
            nn.LayerNorm(latent_dim), _scaled_identity_(nn.Linear(latent_dim, hidden_dim), hidden_norm * unit))
        self.refine_append_input_projector = nn.Sequential(
            nn.LayerNorm(latent_dim), _scaled_identity_(nn.Linear(latent_dim, embedder_dim), embedder_norm * unit))
        self.query_embedder_head: nn.Module = (
            nn.Identity() if embedder_dim == latent_dim else nn.Linear(embedder_dim, latent_dim))
        self.refine_gate = RefineGate()

    def latent(self, hidden: torch.Tensor, position: int = 0) -> torch.Tensor:
        """(B, H) final-norm hidden state read at rollout `position` (0: `<REFINE>`) -> (B, D) latent."""
        return self.refine_projector(self.refine_hidden_centre(hidden, position))

    def feed_back(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, D) latent -> (B, H) input embedding of the next latent step."""
        return self.refine_latent_input_projector(latent)

    def to_embedder(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, N, D) latents -> (B, N, He) vectors inserted into the embedder's input sequence."""
        return self.refine_append_input_projector(latents)

    def refined_query(self, original: torch.Tensor, with_latents: torch.Tensor) -> torch.Tensor:
        """q' from the original query vectors (B, D) and the embedder's vectors of the query with latents (B, He)."""
        if not isinstance(self.query_embedder_head, nn.Identity):  # the release's map from He to D
            weight = self.query_embedder_head.weight
            with_latents = nn.functional.normalize(self.query_embedder_head(with_latents.to(weight.device,
                                                                                            weight.dtype)), dim=-1)
            original = original.to(with_latents.device)
        return self.refine_gate(original, with_latents)
