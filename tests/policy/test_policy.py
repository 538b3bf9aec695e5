from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from videosearch.corpus.types import VideoFrames
from videosearch.embed.mini import MiniEmbedder
from videosearch.errors import ConfigError
from videosearch.policy.format import format_output
from videosearch.policy.policy import HEADS_FILE, HIDDEN_MEAN, Policy, PolicyConfig
from videosearch.policy.rollout import rollout_latents_recomputed


def _video(n_frames: int, seed: int) -> VideoFrames:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (n_frames, 32, 32, 3), dtype=np.uint8)
    return VideoFrames(f"v{seed}", frames, np.arange(n_frames, dtype=np.float32) * 2.0, 2.0 * n_frames)



@pytest.fixture
def policy(mini_embedder: MiniEmbedder) -> Policy:
    torch.manual_seed(0)
    # 3 latents: this LM's large random weights amplify float rounding along longer rollouts
    return Policy.create(PolicyConfig(preset="tiny-mini", max_new_tokens=12, n_latents=3), mini_embedder).eval()


def test_generates_a_batch_and_refines_into_the_embedder_space(policy: Policy, mini_embedder: MiniEmbedder) -> None:
    turn = policy.generate(["the red circle jumps", "a blue square"], [_video(3, 0), _video(5, 1)], mode="sqr")
    assert len(turn.texts) == 2 and all(0 < n <= 12 for n in turn.generated_tokens)
    assert all(p.answer in ("matched", "not_matched", "unparsable") for p in turn.parsed)
    latents = policy.refine(turn)
    assert latents.shape == (2, 3, mini_embedder.latent_dim)
    refined = mini_embedder.embed_text_with_latents(turn.queries, latents)
    assert refined.shape == (2, mini_embedder.dim) and torch.isfinite(refined).all()


def test_refine_on_the_cache_equals_a_full_recompute(perturb, policy: Policy) -> None:
    perturb(policy)
    query, video = "the red circle jumps", _video(4, 2)
    turn = policy.generate([query], [video])
    latents = policy.refine(turn)
    ids, mask = policy._tokenize([policy._prompt(query, video, "sqr")])
    written = [t for t in turn.token_ids[0] if t not in policy.eos_ids]  # an end-of-turn token is never fed
    if not turn.has_refine[0]:
        written = [*written, policy.refine_id]
    full = torch.cat([ids, torch.tensor([written])], dim=1)
    embeds = policy.vision._embed(policy.lm, full, [video])
    with torch.no_grad():
        reference = rollout_latents_recomputed(policy.lm, policy.sqr, embeds, torch.ones_like(full), 3)
    torch.testing.assert_close(latents, policy.sqr.to_embedder(reference), atol=1e-4, rtol=1e-4)


def test_checkpoint_round_trip_gives_the_same_outputs(perturb, policy: Policy, tmp_path: Path,
                                                      mini_embedder: MiniEmbedder) -> None:
    perturb(policy)
    videos = [_video(3, 0), _video(2, 3)]
    before = policy.generate(["q one", "q two"], videos)
    policy.save(tmp_path / "ckpt")
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "ckpt").rglob("*") if p.is_file()}
    assert "policy_heads.safetensors" in sizes and "adapter_model.safetensors" in sizes
    loaded = Policy.load(tmp_path / "ckpt", mini_embedder)
    after = loaded.generate(["q one", "q two"], videos)
    assert after.texts == before.texts
    # merging LoRA into the base weights changes the order of float sums
    torch.testing.assert_close(loaded.refine(after), policy.refine(before), atol=1e-3, rtol=1e-3)


def test_a_checkpoint_without_the_hidden_centre_loads_uncentred(perturb, policy: Policy, tmp_path: Path,
                                                               mini_embedder: MiniEmbedder) -> None:
    """Checkpoints written before the centre existed (and the reference's) lack `refine_hidden_centre`: zeros."""
    perturb(policy)
    policy.save(tmp_path / "ckpt")
    loaded = Policy.load(tmp_path / "ckpt", mini_embedder)
    torch.testing.assert_close(loaded.sqr.refine_hidden_centre.mean, policy.sqr.refine_hidden_centre.mean)
    heads = load_file(tmp_path / "ckpt" / HEADS_FILE)
    del heads[HIDDEN_MEAN]
    save_file(heads, tmp_path / "ckpt" / HEADS_FILE)
    old = Policy.load(tmp_path / "ckpt", mini_embedder)
    assert old.sqr.refine_hidden_centre.mean.abs().sum() == 0
    del heads["refine_projector.0.weight"]
    save_file(heads, tmp_path / "ckpt" / HEADS_FILE)
    with pytest.raises(ConfigError, match="refine_projector.0.weight"):
        Policy.load(tmp_path / "ckpt", mini_embedder)


def test_sft_step_trains_lora_projectors_head_and_the_refine_row(policy: Policy) -> None:
    policy.train()
    target = format_output("the circle is blue, not red", False)
    batch = policy.sft_forward(["the red circle jumps", "x"], [_video(3, 0), _video(2, 1)],
                               [target, "<answer>matched</answer> <query>y</query>"], ["sqr", "hqr"])
    assert batch.refine_rows.tolist() == [True, False], "only targets ending with <REFINE> roll out latents"
    from videosearch.policy.rollout import rollout_latents
    latents = rollout_latents(policy.vision.step_fn(policy.lm, batch.cache), policy.sqr, batch.refine_hidden,
                              batch.attention_mask, policy.config.n_latents)
    probe = torch.randn_like(latents[:, :, :1])  # a loss with a non-zero gradient at z = 0
    (batch.ce_loss + (policy.sqr.to_embedder(latents)[batch.refine_rows] * probe[batch.refine_rows]).sum()).backward()
    grads = {n: p.grad for n, p in policy.named_parameters() if p.requires_grad}
    assert any("lora_B" in n and g is not None and g.abs().sum() > 0 for n, g in grads.items())
    assert any("vision_projector" in n and g is not None and g.abs().sum() > 0 for n, g in grads.items())
    assert any("refine_projector" in n and g is not None and g.abs().sum() > 0 for n, g in grads.items())
    assert any("trainable_tokens" in n and g is not None for n, g in grads.items()), "the <REFINE> row trains"
    assert not any("tower" in n for n in grads), "the video tower stays frozen"


def test_a_few_sft_steps_teach_the_format(policy: Policy) -> None:
    """Learning is judged by margins on the loss: an exact greedy string after many steps depends on the CPU's
    rounding (it failed on other x86 machines at lr 1e-2); here the loss falls from ~8 to ~0.1 in 80 steps."""
    policy.train()
    target = format_output("ok", True, (2.0, 4.0))
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(80):
        loss = policy.sft_forward(["q"], [_video(2, 0)], [target], ["sqr"]).ce_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 4.0, "an untrained byte-level LM starts near ln(vocab)"
    assert sum(losses[-10:]) / 10 < 0.1 * losses[0]


def test_bad_configs_and_checkpoints_are_clear_errors(tmp_path: Path, mini_embedder: MiniEmbedder,
                                                      policy: Policy) -> None:
    with pytest.raises(ConfigError, match="unknown policy preset"):
        PolicyConfig(preset="huge")
    with pytest.raises(ConfigError, match="not a policy checkpoint"):
        Policy.load(tmp_path, mini_embedder)
    with pytest.raises(ConfigError, match="unknown mode"):
        policy.generate(["q"], [_video(2, 0)], mode="magic")


@pytest.mark.parametrize(("damage", "fragment"), [
    (lambda f: (f / "policy.json").write_text('{"preset": "tiny-mini", '), "policy.json is damaged"),
    (lambda f: (f / "policy.json").write_text("[]"), "not a policy config"),
    (lambda f: (f / "policy_heads.safetensors").write_bytes(b"\x00" * 7), "damaged or partial"),
    (lambda f: (f / "policy_heads.safetensors").unlink(), "damaged or partial"),
    (lambda f: next((f / "adapter").glob("*.safetensors")).write_bytes(b"{}"), "damaged or partial"),
])
def test_a_damaged_checkpoint_is_a_clear_error_naming_it(tmp_path: Path, mini_embedder: MiniEmbedder,
                                                         policy: Policy, damage: Callable[[Path], object],
                                                         fragment: str) -> None:
    policy.save(tmp_path / "ckpt")
    damage(tmp_path / "ckpt")
    with pytest.raises(ConfigError, match=fragment) as error:
        Policy.load(tmp_path / "ckpt", mini_embedder)
    assert str(tmp_path / "ckpt") in str(error.value)


def test_the_verdict_is_a_probability_read_at_the_answer_and_can_be_forced(policy: Policy) -> None:
    queries, videos = ["the red circle jumps", "a blue square"], [_video(3, 0), _video(5, 1)]
    policy.config.max_new_tokens = 18  # the byte-level tokenizer spends 12 tokens on "not_matched</answer>"
    free = policy.generate(queries, videos)
    assert all(0.0 <= p <= 1.0 for p in free.match_prob)
    assert free.match_prob == pytest.approx(policy.match_probability(queries, videos), abs=1e-5)
    assert all("</think><answer>" in t for t in free.texts), "an untrained row runs out of room: its reasoning is " \
                                                            "closed for it and it answers"
    assert all(p.answer != "unparsable" for p in free.parsed)
    forced = policy.generate(queries, videos, verdicts=[True, False])
    assert [p.answer for p in forced.parsed] == ["matched", "not_matched"]
    assert forced.match_prob == pytest.approx(free.match_prob, abs=1e-5), "forcing changes the verdict, not P"
    policy.config.verdict_threshold = 0.0
    assert [p.answer for p in policy.generate(queries, videos).parsed] == ["matched", "matched"]
    policy.config.verdict_threshold = 1.0
    assert {p.answer for p in policy.generate(queries, videos, verdicts=[None, True]).parsed} == {"not_matched",
                                                                                                  "matched"}
    with pytest.raises(ValueError, match="2 verdicts for 1 queries"):
        policy.generate(queries[:1], videos[:1], verdicts=[True, False])


def test_a_policy_with_its_own_frame_encoder_saves_it_and_loads_back(tmp_path: Path,
                                                                     mini_embedder: MiniEmbedder) -> None:
    from videosearch.policy.frame_encoder import FrameEncoder, FrameEncoderConfig

    torch.manual_seed(0)
    FrameEncoder(FrameEncoderConfig(frame_size=32)).save_pretrained(tmp_path / "encoder")
    config = PolicyConfig(preset="tiny-mini", max_new_tokens=8, n_latents=2, frame_encoder=str(tmp_path / "encoder"))
    policy = Policy.create(config, mini_embedder).eval()
    assert policy.vision.frame_size == (32, 32)
    videos = [_video(3, 0), _video(4, 1)]  # different lengths: each video's neighbours are its own frames
    prompt = policy._prompt("q one", videos[1], "sqr")
    assert "Retrieved video: In the " in prompt and prompt.count("<frame>") == 4, "the event log, then the frames"
    ids, _ = policy._tokenize([prompt])
    frame_rows = policy.vision._embed(policy.lm, ids, [videos[1]])[ids == policy.vision.frame_id]
    token_norm = float(policy.lm.get_input_embeddings().weight[:256].norm(dim=-1).mean())
    assert frame_rows.norm(dim=-1).tolist() == pytest.approx([token_norm] * 4, rel=0.05), "frames on the text's scale"
    before = policy.generate(["q one", "q two"], videos)
    policy.save(tmp_path / "ckpt")
    (tmp_path / "encoder" / "frame_encoder.safetensors").unlink()  # the checkpoint carries its own copy
    loaded = Policy.load(tmp_path / "ckpt", mini_embedder)
    assert loaded.config.frame_encoder == "frame_encoder"
    assert loaded.generate(["q one", "q two"], videos).match_prob == pytest.approx(before.match_prob, abs=1e-4)
    encoder, calls = loaded.vision.frame_encoder, []
    forward = encoder.forward
    encoder.forward = lambda frames: (calls.append(len(frames)), forward(frames))[1]
    loaded.generate(["q one", "q two"], [_video(3, 2), _video(4, 3)])
    assert calls == [1, 1], "each clip is encoded once, for its log and its <frame> rows"


def test_rows_that_repeat_a_prompt_share_its_prefill_and_give_the_same_results(policy: Policy) -> None:
    video = _video(4, 3)
    queries = ["the red circle jumps", "the red circle jumps", "a blue square"]
    shared = policy.generate(queries, [video, video, _video(5, 4)])
    alone = policy.generate(queries, [video, VideoFrames(**vars(video)), _video(5, 4)])  # a copy: not shared
    assert shared.token_ids == alone.token_ids
    torch.testing.assert_close(policy.refine(shared), policy.refine(alone), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        one = policy.completion_logprobs(queries, [video, video, _video(5, 4)], shared.token_ids)
        two = policy.completion_logprobs(queries, [video, VideoFrames(**vars(video)), _video(5, 4)], shared.token_ids)
    assert one.mask.tolist() == [[True] * len(t) + [False] * (one.mask.shape[1] - len(t)) for t in shared.token_ids]
    torch.testing.assert_close(one.logprobs, two.logprobs, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(one.last_hidden, two.last_hidden, atol=1e-4, rtol=1e-4)
    assert (one.logprobs[one.mask] < 0).all()

