"""The SQR latent rollout on the KV cache of the generated sequence (exactly one implementation).

After a turn's text ends at `<REFINE>`, N latents are rolled out: z_1 from the hidden state at `<REFINE>`,
then each latent is fed back as the next input embedding. With the cache, step t costs one
single-position forward pass; the video prompt is never recomputed (the reference re-ran it N - 1 times).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers.cache_utils import Cache

from videosearch.policy.sqr import SQRHead

#: one single-position forward on the cache: (inputs_embeds (B, 1, H), attention_mask (B, L + 1)) -> final-norm
#: hidden state (B, H) of that position; the policy supplies it, since models place positions differently
Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _last_hidden(output: object) -> torch.Tensor:
    """Final-norm hidden state of the last position: (B, H)."""
    return output.hidden_states[-1][:, -1]  # type: ignore[attr-defined]


def _positions(attention_mask: torch.Tensor, length: int) -> torch.Tensor:
    """Positions (B, T) of the last `length` inputs: each real one's count of real tokens before it, so left
    padding, right padding and masked-out rows stay exact (a masked input takes the next real one's)."""
    block = attention_mask[:, -length:]
    return attention_mask[:, :-length].sum(-1, keepdim=True) + block.cumsum(-1) - block


def causal_lm_extend(model: torch.nn.Module, past_key_values: Cache, inputs_embeds: torch.Tensor,
                     attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """T positions (B, T, H) on the cache of a causal LM with rotary positions: (final-norm hidden (B, T, H),
    logits (B, T, V)); `attention_mask` (B, L + T) includes them."""
    output = model(inputs_embeds=inputs_embeds, past_key_values=past_key_values, attention_mask=attention_mask,
                   position_ids=_positions(attention_mask, inputs_embeds.shape[1]), use_cache=True,
                   output_hidden_states=True)
    return output.hidden_states[-1], output.logits


def causal_lm_step(model: torch.nn.Module, past_key_values: Cache, inputs_embeds: torch.Tensor,
                   attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One position on the cache of a causal LM: (final-norm hidden (B, H), logits (B, V))."""
    hidden, logits = causal_lm_extend(model, past_key_values, inputs_embeds, attention_mask)
    return hidden[:, -1], logits[:, -1]


def rollout_latents(
    step: Step,
    head: SQRHead,
    refine_hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    n_latents: int = 8,
    read: list[torch.Tensor] | None = None,
    explore: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Roll out `n_latents` latents on the cache.

    Args:
        step: one single-position forward on the cache holding the sequence up to and including `<REFINE>`.
        head: the SQR head.
        refine_hidden: float (B, H), final-norm hidden state at each row's `<REFINE>` token.
        attention_mask: long (B, L), 1 for real tokens of the cached sequence (left padding allowed).
        n_latents: N, the number of latents.
        read: when given, the (B, H) hidden state read at each of the N positions is appended to it.
        explore: maps the head's (B, D) latent at each step to the one fed back and returned (GRPO draws it from
            a Gaussian around the head's, or feeds back the one drawn before); None keeps the head's.

    Returns:
        float (B, N, D) latents z_1..z_N.
    """
    read = [] if read is None else read
    explore = explore or (lambda latent: latent)
    read.append(refine_hidden)
    latents = [explore(head.latent(refine_hidden))]  # (B, D)
    mask = attention_mask
    for position in range(1, n_latents):
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        read.append(step(head.feed_back(latents[-1])[:, None], mask))
        latents.append(explore(head.latent(read[-1], position)))
    return torch.stack(latents, dim=1)


def rollout_latents_recomputed(
    model: torch.nn.Module, head: SQRHead, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
    n_latents: int = 8,
) -> torch.Tensor:
    """The same rollout without a cache: every step re-runs the whole sequence (reference's way; for tests
    and benchmarks only). `inputs_embeds` (B, L, H) ends at `<REFINE>`."""
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    output = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                   output_hidden_states=True)
    latents = [head.latent(_last_hidden(output))]
    embeds, mask = inputs_embeds, attention_mask
    for position in range(1, n_latents):
        embeds = torch.cat([embeds, head.feed_back(latents[-1])[:, None]], dim=1)
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        output = model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids, output_hidden_states=True)
        latents.append(head.latent(_last_hidden(output), position))
    return torch.stack(latents, dim=1)


def qwen3vl_extend(model: torch.nn.Module, past_key_values: Cache, rope_deltas: torch.Tensor,
                   inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """T text positions on a Qwen3-VL cache: (final-norm hidden (B, T, H), logits (B, T, V)); `attention_mask`
    (B, L + T) includes them and `rope_deltas` (B, 1) are the prefill's (`get_rope_index`, or
    `model.model.rope_deltas` after generate)."""
    # M-RoPE position of a text token after the video: its count of real tokens shifted by the video's delta
    position = _positions(attention_mask, inputs_embeds.shape[1]) + rope_deltas.to(attention_mask.device)  # (B, T)
    output = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, past_key_values=past_key_values,
                   position_ids=position[None].expand(3, -1, -1), use_cache=True, output_hidden_states=True)
    return output.hidden_states[-1], output.logits


def qwen3vl_step(model: torch.nn.Module, past_key_values: Cache, rope_deltas: torch.Tensor,
                 inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One position on a Qwen3-VL cache: (final-norm hidden (B, H), logits (B, V))."""
    hidden, logits = qwen3vl_extend(model, past_key_values, rope_deltas, inputs_embeds, attention_mask)
    return hidden[:, -1], logits[:, -1]
