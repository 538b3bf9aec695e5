from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from videosearch.policy.rollout import causal_lm_step, rollout_latents, rollout_latents_recomputed
from videosearch.policy.sqr import SQRHead


@pytest.fixture(scope="module")
def tiny_lm() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(config).eval()


def test_head_shapes_and_initialisation() -> None:
    torch.manual_seed(0)
    head = SQRHead(hidden_dim=32, latent_dim=24, embedder_dim=16, hidden_norm=2.0, embedder_norm=0.5)
    hidden = torch.randn(3, 32)
    z = head.latent(hidden).detach()
    assert z.shape == (3, 24) and z.abs().min() > 0, "the last layer starts small and random, not at zero"
    assert z.norm(dim=-1).max() < 1.0, "... and small"
    assert head.feed_back(z).shape == (3, 32) and head.to_embedder(z[:, None]).shape == (3, 1, 16)
    # LayerNorm's output has norm ~sqrt(D); the projectors scale it to the norm of the space they feed
    assert float(head.feed_back(z).norm(dim=-1).mean()) == pytest.approx(2.0, rel=0.1)
    assert float(head.to_embedder(z[:, None]).norm(dim=-1).mean()) == pytest.approx(0.5 * (16 / 24) ** 0.5, rel=0.15)
    w = head.refine_latent_input_projector[1].weight
    torch.testing.assert_close(w[:24, :24], torch.eye(24) * 2.0 / 24 ** 0.5)
    assert w[24:].abs().sum() == 0
    assert isinstance(SQRHead(32, 16, 16).query_embedder_head, torch.nn.Identity)


def _spread(x: torch.Tensor) -> float:
    """Mean pairwise cosine of the rows of x."""
    x = torch.nn.functional.normalize(x, dim=-1)
    return float(((x @ x.T).sum() - len(x)) / (len(x) * (len(x) - 1)))


def test_centring_makes_the_latents_of_alike_hidden_states_differ() -> None:
    """Hidden states that share one large direction (as the LM's do) give one latent for all rows until the head
    reads them centred; the centre starts at zero (the reference's head) and is fitted per rollout position."""
    torch.manual_seed(0)
    head = SQRHead(hidden_dim=32, latent_dim=16, embedder_dim=16, n_latents=2)
    common = torch.randn(32) * 20
    hidden = common + torch.randn(64, 32)
    assert _spread(hidden) > 0.95
    before = head.latent(hidden).detach()
    head.refine_hidden_centre.track(torch.stack([hidden, hidden + 5], 1), 1.0)
    torch.testing.assert_close(head.refine_hidden_centre.mean[0], hidden.mean(0))
    torch.testing.assert_close(head.refine_hidden_centre.mean[1], hidden.mean(0) + 5)
    after = head.latent(hidden).detach()
    assert _spread(before) > 0.9 and _spread(after) < 0.3
    torch.testing.assert_close(head.latent(hidden + 5, position=1), after)
    head.refine_hidden_centre.track(torch.zeros(64, 2, 32), 0.25)  # momentum < 1 moves the centre part of the way
    torch.testing.assert_close(head.refine_hidden_centre.mean[0], 0.75 * hidden.mean(0))


def test_the_refined_query_starts_as_the_original_and_the_gate_learns() -> None:
    head = SQRHead(hidden_dim=8, latent_dim=8, embedder_dim=8)
    q = torch.nn.functional.normalize(torch.randn(4, 6), dim=-1)
    f = torch.nn.functional.normalize(torch.randn(4, 6, requires_grad=True), dim=-1)
    refined = head.refined_query(q, f)
    torch.testing.assert_close(refined, q)
    (-(refined * f.detach()).sum()).backward()  # a loss that pulls q' towards f: the gate must open
    assert head.refine_gate.weight.grad is not None and head.refine_gate.weight.grad < 0
    with torch.no_grad():
        head.refine_gate.weight.fill_(1.0)
    torch.testing.assert_close(head.refined_query(q, f), f)


def test_cached_rollout_equals_full_recompute(tiny_lm: LlamaForCausalLM) -> None:
    torch.manual_seed(1)
    head = SQRHead(hidden_dim=32, latent_dim=32, embedder_dim=16)
    torch.nn.init.normal_(head.refine_projector[3].weight, std=0.2)  # non-zero latents, so the test can fail
    head.refine_hidden_centre.mean.normal_()  # a centre per position: both rollouts must read position t's
    embeds = torch.randn(2, 9, 32)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, :3] = 0  # left padding in the second row
    with torch.no_grad():
        reference = rollout_latents_recomputed(tiny_lm, head, embeds, mask, n_latents=8)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        out = tiny_lm(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids, use_cache=True,
                      output_hidden_states=True)
        cache = out.past_key_values
        step = lambda embeds, m: causal_lm_step(tiny_lm, cache, embeds, m)[0]  # noqa: E731
        read: list[torch.Tensor] = []
        cached = rollout_latents(step, head, out.hidden_states[-1][:, -1], mask, 8, read)
    assert cached.shape == (2, 8, 32) and reference.abs().sum() > 0
    torch.testing.assert_close(cached, reference, atol=1e-5, rtol=1e-4)
    assert len(read) == 8 and all(h.shape == (2, 32) for h in read), "the hidden state read at each position"
    torch.testing.assert_close(read[0], out.hidden_states[-1][:, -1])


def test_gradients_flow_from_latents_to_the_head(tiny_lm: LlamaForCausalLM) -> None:
    head = SQRHead(hidden_dim=32, latent_dim=32, embedder_dim=16)
    embeds = torch.randn(1, 5, 32)
    mask = torch.ones(1, 5, dtype=torch.long)
    out = tiny_lm(inputs_embeds=embeds, attention_mask=mask, use_cache=True, output_hidden_states=True)
    cache = out.past_key_values
    step = lambda embeds, m: causal_lm_step(tiny_lm, cache, embeds, m)[0]  # noqa: E731
    latents = rollout_latents(step, head, out.hidden_states[-1][:, -1], mask, 4)
    head.to_embedder(latents).sum().backward()
    assert head.refine_projector[3].weight.grad is not None and head.refine_projector[3].weight.grad.abs().sum() > 0
