"""Stage-2 GRPO: advantages, the loss's direction, latents scored by the means that drew them, a run that logs,
plots and resumes, and the paper preset's step."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from videosearch.agent.videos import VideoCache
from videosearch.corpus.annotations import read_moments
from videosearch.embed.mini import MiniEmbedder
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.policy.policy import Policy, PolicyConfig
from videosearch.train.grpo import (
    GaussianLatents,
    GivenLatents,
    GRPOConfig,
    _accumulate_loss,
    _Turn,
    group_advantages,
    set_latent_advantages,
    train_grpo,
)

POLICY = {"n_latents": 2, "max_new_tokens": 24}


@pytest.fixture
def grpo_inputs(engine: SearchEngine, small_world: Path, tmp_path: Path) -> dict[str, str]:
    """A fresh tiny-mini policy saved as the SFT checkpoint, the index over the small world's test videos and their
    queries: GRPOConfig's paths."""
    torch.manual_seed(0)
    Policy.create(PolicyConfig(preset="tiny-mini", **POLICY), engine.embedder).save(tmp_path / "sft")
    engine.save(tmp_path / "index")
    return {"policy": str(tmp_path / "sft"), "index": str(tmp_path / "index"),
            "annotations": str(small_world / "test.jsonl")}


def test_advantages_are_normalised_within_each_group() -> None:
    advantages = group_advantages(torch.tensor([1.0, 3.0, 5.0, 5.0, 0.0, 2.0]), 2)
    torch.testing.assert_close(advantages, torch.tensor([-0.7071, 0.7071, 0.0, 0.0, -0.7071, 0.7071]), atol=1e-3,
                               rtol=0)


def test_each_refinement_is_scored_against_its_groups_refinements() -> None:
    latents = torch.zeros(1, 2)
    turns = [_Turn(0, "q", "v", [], [], latents, refine_gain=0.1),
             _Turn(1, "q", "v", [], [], latents, refine_gain=0.3),
             _Turn(1, "q", "w", [], [], None, refine_gain=0.9),  # refined without drawn latents: not counted
             _Turn(2, "q", "v", [], [], latents, refine_gain=0.5)]  # alone in the second group
    set_latent_advantages(turns, group_size=2)
    assert [t.latent_advantage for t in turns] == pytest.approx([-0.7071, 0.7071, 0.0, 0.0], abs=1e-3)


def test_the_loss_raises_the_rewarded_completion_and_lowers_the_other(engine: SearchEngine, small_world: Path) -> None:
    torch.manual_seed(0)
    policy = Policy.create(PolicyConfig(preset="tiny-mini", **POLICY), engine.embedder)
    reference = copy.deepcopy(policy).eval()
    moment = read_moments(small_world / "test.jsonl").moments[0]
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    generator = torch.Generator().manual_seed(1)
    turn = policy.generate([moment.query] * 2, [videos[moment.video_id]] * 2, temperature=1.0, generator=generator)
    assert turn.token_ids[0] != turn.token_ids[1]
    turns = [_Turn(r, moment.query, moment.video_id, turn.token_ids[r], turn.chosen[r]) for r in range(2)]

    def chosen_logp() -> list[float]:
        with torch.no_grad():
            out = policy.completion_logprobs([moment.query] * 2, [videos[moment.video_id]] * 2, turn.token_ids)
        return [float(sum(lp for lp, c in zip(out.logprobs[r, : len(t.chosen)], t.chosen) if c))
                for r, t in enumerate(turns)]

    before = chosen_logp()
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.05)
    optimizer.zero_grad()
    stats = _accumulate_loss(policy, reference, videos, turns, torch.tensor([1.0, -1.0]), GRPOConfig(), world=1)
    optimizer.step()
    after = chosen_logp()
    assert after[0] > before[0] and after[1] < before[1]
    assert stats["kl"] == pytest.approx(0.0, abs=1e-5), "the policy starts as its reference"
    sampled = [t.old_logprobs.clone() for t in turns]  # type: ignore[union-attr]
    optimizer.zero_grad()  # a second pass (GRPO's mu = 2): the ratio is against the weights that sampled
    again = _accumulate_loss(policy, reference, videos, turns, torch.tensor([1.0, -1.0]), GRPOConfig(), world=1)
    for t, old in zip(turns, sampled):
        torch.testing.assert_close(t.old_logprobs, old)
    assert again["kl"] > 0, "the policy has moved from its reference"


def test_drawn_latents_are_scored_by_the_means_that_drew_them(engine: SearchEngine, small_world: Path) -> None:
    torch.manual_seed(0)
    policy = Policy.create(PolicyConfig(preset="tiny-mini", **POLICY), engine.embedder).eval()
    moments = read_moments(small_world / "test.jsonl").moments[:2]
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    shown = [videos[m.video_id] for m in moments]
    turn = policy.generate([m.query for m in moments], shown)
    explore = GaussianLatents(0.5, torch.Generator().manual_seed(0))
    drawn = policy.latents(turn, explore)
    assert torch.all(explore.sigmas[0] > 0)
    # teacher-forced again from the written tokens (a <REFINE> appended where the turn did not write one)
    tokens = [t + ([] if done else [policy.refine_id]) for t, done in zip(turn.token_ids, turn.has_refine.tolist())]
    completion = policy.completion_logprobs([m.query for m in moments], shown, tokens)
    given = GivenLatents(drawn)
    policy.rollout_from(completion, given)
    means = torch.stack(given.means, dim=1).detach()
    torch.testing.assert_close(means, torch.stack(explore.means, dim=1), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(means, drawn, atol=1e-3), "exploration moved the latents off their means"


def test_the_latents_term_trains_the_sqr_head_alone(engine: SearchEngine, small_world: Path) -> None:
    from videosearch.train.grpo import _Corpus, _trainable, sample_episodes

    torch.manual_seed(0)
    policy = Policy.create(PolicyConfig(preset="tiny-mini", **POLICY), engine.embedder)
    reference = copy.deepcopy(policy).eval()
    with torch.no_grad():  # a fresh head's gate is 0: latents would not move the query, nor their gains differ
        policy.sqr.refine_gate.weight.fill_(0.5)
    config = GRPOConfig(group_size=4, latent_noise=0.5)
    parameters = dict(_trainable(policy, config))
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    policy.config.verdict_threshold = 1 - 1e-9  # every turn rejects, so every episode refines
    moments = read_moments(small_world / "test.jsonl").moments[:2]
    _, turns = sample_episodes(policy, engine, _Corpus(engine), videos, moments, config,
                               torch.Generator().manual_seed(0))
    set_latent_advantages(turns, config.group_size)
    assert any(t.latent_advantage != 0 for t in turns)
    # the episodes' advantages are 0 and the policy is its reference: only the latents' term has a gradient
    _accumulate_loss(policy, reference, videos, turns, torch.zeros(len(moments) * 4), config, world=1)

    def largest(head: bool) -> float:
        return max((float(p.grad.abs().max()) for n, p in parameters.items()
                    if p.grad is not None and n.startswith("sqr.") == head), default=0.0)

    assert largest(True) > 0 and largest(False) < 1e-6 * largest(True)  # LoRA: the KL's rounding only


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return {**load_file(folder / "policy_heads.safetensors"),
            **{f"lora.{k}": v for k, v in load_file(folder / "adapter" / "adapter_model.safetensors").items()}}


def test_a_run_logs_plots_and_resumes_where_it_stopped(grpo_inputs: dict[str, str], tmp_path: Path) -> None:
    common = {**grpo_inputs, "group_size": 4, "prompts_per_step": 2, "lr": 1e-3, "warmup_steps": 0,
              "save_every": 1, "max_turns": 2}
    whole = train_grpo(GRPOConfig(out=str(tmp_path / "whole"), steps=2, **common))
    train_grpo(GRPOConfig(out=str(tmp_path / "cut"), steps=1, **common))  # as if killed after step 1
    resumed = train_grpo(GRPOConfig(out=str(tmp_path / "cut"), steps=2, **common))
    logs = [[json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
            for run in ("whole", "cut")]
    assert [r["step"] for r in logs[0]] == [r["step"] for r in logs[1]] == [1, 2]
    assert {"reward", "reward_answer", "reward_iou", "reward_refine_quality", "kl", "turns"} <= logs[0][0].keys()
    norms = [r["grad_norm"] for log in logs for r in log]
    assert all(math.isfinite(n) for n in norms) and max(norms) > 0, norms
    for a, b in zip(*logs):  # the resumed run drew the same episodes
        assert a["reward"] == pytest.approx(b["reward"], abs=1e-6)
    assert (tmp_path / "whole" / "rewards.png").stat().st_size > 1000
    one, two, start = _weights(whole), _weights(resumed), _weights(Path(grpo_inputs["policy"]))
    for key in one:
        torch.testing.assert_close(one[key], two[key], atol=1e-5, rtol=1e-4)
    assert any(not torch.equal(one[k], start[k]) for k in one if k.startswith("lora.")), "LoRA trained"
    for key in one:
        if not key.startswith("lora."):  # the vision projector and, without exploration, the SQR head stay
            torch.testing.assert_close(one[key], start[key], msg=key)


def test_latent_exploration_trains_the_sqr_head(engine: SearchEngine, grpo_inputs: dict[str, str],
                                               tmp_path: Path) -> None:
    policy = Policy.load(grpo_inputs["policy"], engine.embedder, trainable=True)
    with torch.no_grad():  # a fresh head's gate is 0: latents would not move the query, nor their gains differ
        policy.sqr.refine_gate.weight.fill_(0.5)
    policy.save(tmp_path / "gated")
    inputs = {**grpo_inputs, "policy": str(tmp_path / "gated")}
    out = train_grpo(GRPOConfig(out=str(tmp_path / "out"), steps=2, group_size=4, prompts_per_step=2,
                                warmup_steps=0, lr=1e-3, heads_lr=1e-2, latent_noise=0.5, max_turns=2, **inputs))
    after, start = _weights(out), _weights(tmp_path / "gated")
    assert not torch.equal(after["refine_projector.3.weight"], start["refine_projector.3.weight"])
    log = [json.loads(line) for line in (out.parent / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["grad_norm_sqr"]) for r in log), "the head's gradient is clipped and logged apart"
    torch.testing.assert_close(after["vision_projector.0.weight"], start["vision_projector.0.weight"])


def test_a_step_of_the_paper_preset(mini_embedder: MiniEmbedder, grpo_inputs: dict[str, str],
                                    tmp_path: Path) -> None:
    torch.manual_seed(0)
    Policy.create(PolicyConfig(preset="tiny-paper", **POLICY), mini_embedder).save(tmp_path / "paper")
    out = train_grpo(GRPOConfig(**{**grpo_inputs, "policy": str(tmp_path / "paper")}, out=str(tmp_path / "out"),
                                steps=1, group_size=2, prompts_per_step=1, max_turns=2, latent_noise=0.1))
    record = json.loads((out.parent / "log.jsonl").read_text())
    assert record["step"] == 1 and -3 < record["reward"] < 3
    Policy.load(out, mini_embedder)


def test_bad_settings_are_clear_errors(grpo_inputs: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs `policy`"):
        train_grpo(GRPOConfig(out=str(tmp_path / "out")))
    with pytest.raises(ConfigError, match="group_size must be >= 2"):
        GRPOConfig(group_size=1)
    with pytest.raises(ConfigError, match="latent_noise"):
        GRPOConfig(latent_noise=-1)
    first = json.loads(Path(grpo_inputs["annotations"]).read_text().splitlines()[0])
    (tmp_path / "other.jsonl").write_text(json.dumps({**first, "video": "nowhere"}) + "\n")
    with pytest.raises(ConfigError, match="has its video in the index"):
        train_grpo(GRPOConfig(**{**grpo_inputs, "annotations": str(tmp_path / "other.jsonl")},
                              out=str(tmp_path / "out")))


def test_the_verdict_is_drawn_around_the_calibrated_threshold(engine: SearchEngine, small_world: Path) -> None:
    torch.manual_seed(0)
    policy = Policy.create(PolicyConfig(preset="tiny-mini", **POLICY), engine.embedder).eval()
    moment = read_moments(small_world / "test.jsonl").moments[0]
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    queries, shown = [moment.query] * 12, [videos[moment.video_id]] * 12

    def draw(threshold: float) -> list[str]:
        policy.config.verdict_threshold = threshold
        turn = policy.generate(queries, shown, temperature=1.0, generator=torch.Generator().manual_seed(0))
        return [p.answer for p in turn.parsed]

    assert set(draw(1e-9)) == {"matched"} and set(draw(1 - 1e-9)) == {"not_matched"}
    policy.config.verdict_threshold = 0.5
    turn = policy.generate(queries[:1], shown[:1], temperature=1.0, generator=torch.Generator().manual_seed(0))
    tokens = turn.token_ids[0]
    at = tokens.index(policy.answer_open_id) + 1
    flipped = tokens[:at] + [policy.verdict_ids[1] if tokens[at] == policy.verdict_ids[0] else policy.verdict_ids[0]]
    with torch.no_grad():
        both = policy.completion_logprobs(queries[:2], shown[:2], [tokens, flipped]).logprobs
    assert float(both[0, at].exp() + both[1, at].exp()) == pytest.approx(1.0, abs=1e-5), "one two-way draw"


def test_a_query_flagged_truth_first_is_shown_its_ground_truth_first(engine: SearchEngine, small_world: Path) -> None:
    from videosearch.train.grpo import _Corpus, sample_episodes

    torch.manual_seed(0)
    policy = Policy.create(PolicyConfig(preset="tiny-mini", **POLICY), engine.embedder).eval()
    moments = read_moments(small_world / "test.jsonl").moments
    top = engine.search_by_vector(engine.encode_queries([m.query for m in moments]), 1)
    missed = [m for m, hits in zip(moments, top) if hits[0].video_id != m.video_id][:2]
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    config = GRPOConfig(group_size=2, max_turns=2)
    episodes, _ = sample_episodes(policy, engine, _Corpus(engine), videos, missed, config,
                                  torch.Generator().manual_seed(0), [True, False])
    assert [e.turns[0].video for e in episodes[:2]] == [missed[0].video_id] * 2
    assert all(e.turns[0].video != missed[1].video_id for e in episodes[2:]), "the search's top video"
    for e in episodes:  # each multi-turn episode ends on its matched video or on the refined search's next one
        shown = [t.video for t in e.turns]
        if e.turns[-1].parsed.answer == "matched":
            assert e.final_video == shown[-1]
        else:
            assert e.final_video is not None and e.final_video not in shown
    with pytest.raises(ConfigError, match="truth_first"):
        GRPOConfig(truth_first=1.5)
