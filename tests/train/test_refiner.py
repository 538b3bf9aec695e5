"""The SQR-head stage: only the head and its gate change, the rest of the checkpoint is SFT's; each batch is
prefilled once and the held-out turns choose the epoch kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from videosearch.agent.videos import VideoCache
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.policy.policy import Policy, PolicyConfig
from videosearch.policy.rollout import rollout_latents
from videosearch.train.refiner import (
    Prefilled,
    RefinerTrainConfig,
    _first_among_unseen,
    prefill_turns,
    roll_out,
    train_refiner,
)
from videosearch.train.sft import SFTConfig, train_sft
from videosearch.train.sft_data import build_world_refine_turns, read_sft_examples, write_sft_examples


def test_only_the_sqr_head_trains_and_the_checkpoint_loads(sft_inputs: tuple[Path, Path], tmp_path: Path,
                                                           engine: SearchEngine) -> None:
    data, index = sft_inputs
    policy = PolicyConfig(preset="tiny-mini", n_latents=2, max_new_tokens=4)
    sft = train_sft(SFTConfig(data=str(data), index=str(index), out=str(tmp_path / "sft"), policy=policy,
                              batch_size=2, warmup_steps=1, negatives=6, max_examples=2))
    (sft / "calibration.json").write_text("{}")
    out = train_refiner(RefinerTrainConfig(checkpoint=str(sft), data=str(data), index=str(index),
                                           out=str(tmp_path / "refined"), epochs=3, batch_size=2, negatives=6))
    before, after = Policy.load(sft, engine.embedder), Policy.load(out, engine.embedder)
    old, new = before.heads().state_dict(), after.heads().state_dict()
    assert not torch.equal(old["refine_projector.3.weight"], new["refine_projector.3.weight"])
    assert new["refine_gate.weight"] != 0, "the gate opens"
    centre = "refine_hidden_centre.mean"
    assert old[centre].abs().sum() == 0 and new[centre].abs().sum() > 0, "the stage fits the centre"
    torch.testing.assert_close(old["vision_projector.0.weight"], new["vision_projector.0.weight"])
    for (name, a), b in zip(before.lm.state_dict().items(), after.lm.state_dict().values()):
        torch.testing.assert_close(a, b, msg=f"{name} changed")
    assert (out / "calibration.json").is_file(), "the verdict's calibration travels with the checkpoint"
    log = [json.loads(line) for line in (out / "refiner_log.jsonl").read_text().splitlines()]
    assert len(log) >= 3 and all(r["infonce"] > 0 for r in log)
    with pytest.raises(ConfigError, match="needs `checkpoint`"):
        train_refiner(RefinerTrainConfig(out=str(tmp_path / "x")))
    with pytest.raises(ConfigError, match="centre_momentum"):
        RefinerTrainConfig(centre_momentum=0)


def test_a_prefilled_batch_rolls_out_the_same_latents_every_epoch(sft_inputs: tuple[Path, Path],
                                                                   engine: SearchEngine) -> None:
    data, _ = sft_inputs
    torch.manual_seed(0)
    policy = Policy.create(PolicyConfig(preset="tiny-mini", n_latents=3, max_new_tokens=4), engine.embedder).eval()
    turns = [e for e in read_sft_examples(data) if e.video_id in engine.video_ids][:2]
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    row_of = {v: i for i, v in enumerate(engine.video_ids)}
    batch = prefill_turns(policy, engine.embedder, turns, videos, row_of)
    length = batch.attention_mask.shape[1]
    first = roll_out(policy, batch)
    first.sum().backward()  # a second epoch's backward must not reach through the first one's graph
    again = roll_out(policy, batch)
    again.sum().backward()
    assert batch.cache.get_seq_length() == length, "the rollout's positions are cut off again"
    assert policy.sqr.refine_projector[0].weight.grad.abs().sum() > 0
    torch.testing.assert_close(first, again)
    with torch.no_grad():  # against a fresh fp32 prefill: the fp16 cache only rounds
        state = policy.sft_forward([e.query for e in turns], [videos[e.video_id] for e in turns],
                                   [e.target for e in turns], [e.mode for e in turns])
        fresh = rollout_latents(policy.vision.step_fn(policy.lm, state.cache), policy.sqr, state.refine_hidden,
                                state.attention_mask, 3)
    torch.testing.assert_close(first.detach(), fresh, rtol=2e-2, atol=2e-2)


def test_the_best_held_out_epoch_is_the_one_kept(sft_inputs: tuple[Path, Path], tmp_path: Path,
                                                 engine: SearchEngine) -> None:
    data, index = sft_inputs
    sft = train_sft(SFTConfig(data=str(data), index=str(index), out=str(tmp_path / "sft"), batch_size=2,
                              policy=PolicyConfig(preset="tiny-mini", n_latents=2, max_new_tokens=4),
                              warmup_steps=1, negatives=6, max_examples=2))
    out = train_refiner(RefinerTrainConfig(checkpoint=str(sft), data=str(data), index=str(index), holdout=0.5,
                                           out=str(tmp_path / "refined"), epochs=3, batch_size=1, negatives=6))
    log = [json.loads(line) for line in (out / "refiner_log.jsonl").read_text().splitlines()]
    scores = [r for r in log if "heldout_infonce" in r]
    assert [r["epoch"] for r in scores] == [0, 1, 2, 3] and scores[0]["gate"] == 0, "epoch 0 scores q' = q"
    kept = [r for r in scores if r["kept"]]
    assert len(kept) == 1 and kept[0]["heldout_infonce"] == min(r["heldout_infonce"] for r in scores)
    gate = Policy.load(out, engine.embedder).sqr.refine_gate.weight.item()
    assert gate == pytest.approx(kept[0]["gate"], abs=1e-4), "the checkpoint holds the kept epoch's head"
    with pytest.raises(ConfigError, match="holdout"):
        RefinerTrainConfig(holdout=1.0)


def test_later_turns_train_the_head_and_their_seen_videos_do_not_count(sft_inputs: tuple[Path, Path],
                                                                        small_world: Path, tmp_path: Path) -> None:
    data, index = sft_inputs
    turns = build_world_refine_turns(small_world, index, "test", turns=2, seed=0, max_examples=8)
    assert any(t.seen for t in turns)
    write_sft_examples(tmp_path / "turns.jsonl", turns)
    sft = train_sft(SFTConfig(data=str(data), index=str(index), out=str(tmp_path / "sft"), batch_size=2,
                              policy=PolicyConfig(preset="tiny-mini", n_latents=2, max_new_tokens=4),
                              warmup_steps=1, negatives=6, max_examples=2))
    out = train_refiner(RefinerTrainConfig(checkpoint=str(sft), data=str(tmp_path / "turns.jsonl"), index=str(index),
                                           out=str(tmp_path / "refined"), epochs=1, batch_size=2, holdout=0.5,
                                           negatives=6))
    log = [json.loads(line) for line in (out / "refiner_log.jsonl").read_text().splitlines()]
    assert sum("infonce" in r for r in log) == 2 and log[-1]["heldout_turns"] == 4

    # three videos along one axis: the query is closest to video 0, then 1, then 2 (the ground truth)
    videos = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2]])
    batch = Prefilled(["q", "q"], None, [], torch.zeros(2, 1), torch.ones(2, 1), videos[:2], torch.tensor([2, 2]),
                      torch.tensor([1, 0]), [[0], []])
    query = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert _first_among_unseen(query, videos, batch) == 1, "row 0 has judged 0 and 1; row 1 still ranks 1 first"
