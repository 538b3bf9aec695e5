"""The `paper` policy on a tiny random Qwen3-VL: batched turns over videos of different lengths, the cached latent
rollout against a full recompute with M-RoPE positions, one SFT step, a checkpoint round trip, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from videosearch.corpus.types import VideoFrames
from videosearch.embed.mini import MiniEmbedder
from videosearch.embed.qwen_vl import mm_token_type_ids, video_to_qwen_inputs
from videosearch.errors import ConfigError
from videosearch.policy.format import format_output
from videosearch.policy.policy import Policy, PolicyConfig
from videosearch.policy.rollout import rollout_latents

QUERIES = ["the red circle jumps", "a blue square slides left"]


def _video(n_frames: int, seed: int) -> VideoFrames:
    """Random frames at 0.5 fps."""
    frames = np.random.default_rng(seed).integers(0, 256, (n_frames, 48, 64, 3), dtype=np.uint8)
    return VideoFrames(f"v{seed}", frames, np.arange(n_frames) * 2.0, 2.0 * n_frames)


VIDEOS = [_video(2, 0), _video(5, 1)]



@pytest.fixture
def policy(mini_embedder: MiniEmbedder) -> Policy:
    return Policy.create(PolicyConfig(preset="tiny-paper", max_new_tokens=8, n_latents=3), mini_embedder).eval()


def test_generates_a_batch_and_refines_into_the_embedder_space(policy: Policy, mini_embedder: MiniEmbedder) -> None:
    turn = policy.generate(QUERIES, VIDEOS)
    assert len(turn.texts) == 2 and all(0 < n <= 8 for n in turn.generated_tokens)
    assert all(p.answer in ("matched", "not_matched", "unparsable") for p in turn.parsed)
    latents = policy.refine(turn)
    assert latents.shape == (2, 3, mini_embedder.latent_dim) and torch.isfinite(latents).all()
    refined = mini_embedder.embed_text_with_latents(turn.queries, latents)
    assert refined.shape == (2, mini_embedder.dim) and torch.isfinite(refined).all()
    assert not any("visual" in n for n, p in policy.named_parameters() if p.requires_grad), "the tower is frozen"


def _recomputed_latents(policy: Policy, ids: torch.Tensor, video: VideoFrames, n_latents: int) -> torch.Tensor:
    """No cache: one full forward per latent over prompt, turn and the latents so far, with the video's pixels and
    M-RoPE positions from `get_rope_index`. `ids` (1, L) ends at `<REFINE>`; returns (1, N, D)."""
    qwen = policy.lm.get_base_model()
    video_inputs = video_to_qwen_inputs(video.frames, video.timestamps_s, qwen.config)
    embeds = policy.lm.get_input_embeddings()(ids)
    latents: list[torch.Tensor] = []
    for k in range(n_latents):
        if latents:
            embeds = torch.cat([embeds, policy.sqr.feed_back(latents[-1])[:, None]], dim=1)
        padded = torch.cat([ids, ids.new_zeros(1, k)], dim=1)  # any text id stands for a latent's position
        position_ids, _ = qwen.model.get_rope_index(padded, mm_token_type_ids(padded, qwen.config),
                                                    video_grid_thw=video_inputs.video_grid_thw)
        out = policy.lm(inputs_embeds=embeds, position_ids=position_ids,
                        pixel_values_videos=video_inputs.pixel_values_videos,
                        video_grid_thw=video_inputs.video_grid_thw, output_hidden_states=True)
        latents.append(policy.sqr.latent(out.hidden_states[-1][:, -1], k))
    return torch.stack(latents, dim=1)


def test_refine_on_the_cache_equals_a_full_recompute(perturb, policy: Policy) -> None:
    perturb(policy)
    turn = policy.generate(QUERIES, VIDEOS)  # left padding and two rope deltas in the cached batch
    latents = policy.refine(turn)
    for row, (query, video) in enumerate(zip(QUERIES, VIDEOS)):
        ids, _ = policy._tokenize([policy._prompt(query, video, "sqr")])
        written = [t for t in turn.token_ids[row] if t not in policy.eos_ids]  # an end-of-turn token is never fed
        if not turn.has_refine[row]:
            written = [*written, policy.refine_id]
        with torch.no_grad():
            reference = _recomputed_latents(policy, torch.cat([ids, torch.tensor([written])], dim=1), video, 3)
        torch.testing.assert_close(latents[row:row + 1], policy.sqr.to_embedder(reference), atol=1e-4, rtol=0)


def test_sft_step_reaches_lora_and_the_sqr_head(policy: Policy) -> None:
    policy.train()
    batch = policy.sft_forward(QUERIES[:1], VIDEOS[:1], [format_output("the circle is blue", False)], ["sqr"])
    assert torch.isfinite(batch.ce_loss) and batch.refine_rows.tolist() == [True]
    latents = rollout_latents(policy.vision.step_fn(policy.lm, batch.cache), policy.sqr, batch.refine_hidden,
                              batch.attention_mask, 3)
    probe = torch.randn_like(latents[:, :, :1])  # a loss with a non-zero gradient at z = 0
    (batch.ce_loss + (policy.sqr.to_embedder(latents) * probe).sum()).backward()
    grads = {n: p.grad for n, p in policy.named_parameters() if p.requires_grad}
    assert any("lora_B" in n and g is not None and g.abs().sum() > 0 for n, g in grads.items())
    assert any("refine_projector" in n and g is not None and g.abs().sum() > 0 for n, g in grads.items())


def test_checkpoint_round_trip_gives_the_same_outputs(perturb, policy: Policy, tmp_path: Path,
                                                      mini_embedder: MiniEmbedder) -> None:
    perturb(policy)
    before = policy.generate(QUERIES, VIDEOS)
    policy.save(tmp_path / "ckpt")
    loaded = Policy.load(tmp_path / "ckpt", mini_embedder)
    after = loaded.generate(QUERIES, VIDEOS)
    assert after.texts == before.texts
    torch.testing.assert_close(loaded.refine(after), policy.refine(before), atol=1e-4, rtol=0)


def test_paper_without_a_qwen_folder_is_a_clear_error(tmp_path: Path, mini_embedder: MiniEmbedder) -> None:
    with pytest.raises(ConfigError, match="Qwen3-VL-2B-Instruct"):
        Policy.create(PolicyConfig(preset="paper"), mini_embedder)
    with pytest.raises(ConfigError, match="Qwen3-VL-2B-Instruct"):
        Policy.create(PolicyConfig(preset="paper", lm_path=str(tmp_path)), mini_embedder)
