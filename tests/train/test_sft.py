from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sft_testdata import checkpoint_weights

from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.policy.policy import Policy, PolicyConfig
from videosearch.train import sft
from videosearch.train.checkpoints import CheckpointError
from videosearch.train.sft import SFTConfig, info_nce, train_sft


def test_info_nce_negatives_follow_the_rules() -> None:
    torch.manual_seed(0)
    videos = torch.nn.functional.normalize(torch.randn(40, 8), dim=-1)
    config = SFTConfig(negatives=5, tau=0.1)
    original = videos[[3, 7]].clone()
    original[1] = videos[9]  # row 1's original query points exactly at video 9: it is ambiguous, so dropped
    refined = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1).requires_grad_()
    positives, shown = torch.tensor([3, 7]), torch.tensor([5, 9])
    loss = info_nce(refined, original, videos, positives, shown, config, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and refined.grad is not None and refined.grad.abs().sum() > 0
    # with every negative far below the positive the loss vanishes; with the positive pushed away it grows
    aligned = info_nce(videos[[3, 7]] * 50, original, videos, positives, shown, SFTConfig(negatives=5, tau=1.0),
                       torch.Generator().manual_seed(0))
    opposed = info_nce(-videos[[3, 7]] * 50, original, videos, positives, shown, SFTConfig(negatives=5, tau=1.0),
                       torch.Generator().manual_seed(0))
    assert aligned < 1e-3 < opposed


def test_info_nce_drops_negatives_as_close_as_the_positive() -> None:
    videos = torch.eye(4)
    videos[1] = videos[0]  # video 1 is a duplicate of the positive 0: a likely false negative
    config = SFTConfig(negatives=3, tau=1.0)
    refined = videos[[1]].clone()  # q' prefers... both equally; without the filter the loss would be > log 2
    loss = info_nce(refined, videos[[0]], videos, torch.tensor([0]), torch.tensor([1]), config,
                    torch.Generator().manual_seed(0))
    others = torch.log(1 + 2 * torch.exp(torch.tensor(-1.0)))  # only videos 2 and 3 remain as negatives
    torch.testing.assert_close(loss, others)


def test_info_nce_keeps_the_hard_negatives_that_score_above_the_positive() -> None:
    """The reference's one-sided filter dropped every negative ranked above the positive under the original
    query: the shown wrong video in every not-matched row. Only near-duplicates of the positive go."""
    videos = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.4, 0.0], [0.0, 1.0, 0.0],
                                                         [0.0, 0.0, 1.0]]), dim=-1)
    original = torch.nn.functional.normalize(torch.tensor([[0.8, 0.6, 0.0]]), dim=-1)  # ranks video 1 above 0
    config = SFTConfig(negatives=3, tau=1.0)
    refined = videos[[0]].clone()
    loss = info_nce(refined, original, videos, torch.tensor([0]), torch.tensor([1]), config,
                    torch.Generator().manual_seed(0))
    every_negative = torch.logsumexp(videos @ videos[0], 0) - 1.0
    torch.testing.assert_close(loss, every_negative)


def _config(data: Path, index: Path, out: Path, **values: object) -> SFTConfig:
    # 10 of the 12 videos as negatives: the untrained tower scores a family's videos almost alike, so the
    # ambiguity filter drops the nearest ones
    defaults = {"policy": PolicyConfig(preset="tiny-mini", n_latents=3, max_new_tokens=4), "batch_size": 2,
                "save_every": 1, "warmup_steps": 1, "negatives": 10}
    return SFTConfig(data=str(data), index=str(index), out=str(out), **{**defaults, **values})  # type: ignore


def test_epoch_batches_cover_every_example_once_and_pad_less_than_random_ones() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(150, 320, size=203).tolist()
    batches = sft._epoch_batches(lengths, 8, seed=5)
    assert sorted(i for b in batches for i in b) == list(range(203)) and len(batches) == 26
    assert batches == sft._epoch_batches(lengths, 8, seed=5) and batches != sft._epoch_batches(lengths, 8, seed=6)

    def padded(groups: list[list[int]]) -> int:
        return sum(len(g) * max(lengths[i] for i in g) for g in groups)

    order = rng.permutation(203).tolist()
    random_batches = [order[i:i + 8] for i in range(0, 203, 8)]
    assert padded(batches) < 0.95 * padded(random_batches)
    # the long batches are spread over the epoch, not all at its start
    longest = sorted(range(len(batches)), key=lambda k: -max(lengths[i] for i in batches[k]))[:5]
    assert max(longest) >= len(batches) // 2


def test_sft_trains_checkpoints_what_it_trains_and_resumes(sft_inputs: tuple[Path, Path], tmp_path: Path,
                                                           engine: SearchEngine) -> None:
    data, index = sft_inputs
    final = train_sft(_config(data, index, tmp_path / "run"))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert any(r["infonce"] > 0 for r in log), "rows ending with <REFINE> add the retrieval term"
    files = {p.name for p in final.rglob("*") if p.is_file()}
    assert {"policy.json", "policy_heads.safetensors", "adapter_model.safetensors"} <= files
    assert sum(p.stat().st_size for p in final.rglob("*") if p.is_file()) < 5_000_000, "no base weights inside"
    trained = Policy.load(final, engine.embedder)
    fresh = Policy.create(PolicyConfig(preset="tiny-mini", n_latents=3), engine.embedder)
    assert not torch.equal(trained.heads().state_dict()["vision_projector.0.weight"],
                           fresh.heads().state_dict()["vision_projector.0.weight"])

    # an interrupted run (its log cut after step 1, its `last` checkpoint at step 1) continues from step 2
    resumed = tmp_path / "resumed"
    train_sft(_config(data, index, resumed, epochs=1, max_examples=2))  # one step: `last` holds step 1
    train_sft(_config(data, index, resumed, epochs=3, max_examples=2))
    steps = [json.loads(line)["step"] for line in (resumed / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_sft_without_infonce_leaves_the_sqr_head_to_its_own_stage(sft_inputs: tuple[Path, Path], tmp_path: Path,
                                                                   engine: SearchEngine) -> None:
    """infonce_weight 0 skips the latent rollout: the head keeps its initial weights (not even weight decay)."""
    data, index = sft_inputs
    final = train_sft(_config(data, index, tmp_path / "run", infonce_weight=0.0, epochs=1, max_examples=4))
    assert all(json.loads(line)["infonce"] == 0 for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines())
    torch.manual_seed(0)  # the seed SFT creates its policy under
    fresh = Policy.create(PolicyConfig(preset="tiny-mini", n_latents=3), engine.embedder).heads().state_dict()
    trained = Policy.load(final, engine.embedder).heads().state_dict()
    torch.testing.assert_close(trained["refine_projector.3.weight"], fresh["refine_projector.3.weight"])
    assert not torch.equal(trained["vision_projector.0.weight"], fresh["vision_projector.0.weight"])


def test_sft_in_full_trains_the_whole_lm_and_its_checkpoint_loads_back(sft_inputs: tuple[Path, Path],
                                                                       tmp_path: Path, engine: SearchEngine) -> None:
    """lora_r 0 (the paper's full fine-tuning): the LM's own weights move, and the checkpoint carries them."""
    data, index = sft_inputs
    policy = PolicyConfig(preset="tiny-mini", n_latents=3, max_new_tokens=4, lora_r=0)
    final = train_sft(_config(data, index, tmp_path / "run", policy=policy, epochs=1, max_examples=4, lr=1e-2))
    assert (final / "lm" / "model.safetensors").is_file() and not (final / "adapter").exists()
    trained = Policy.load(final, engine.embedder)
    torch.manual_seed(0)  # the seed SFT creates its policy under
    fresh = Policy.create(PolicyConfig(preset="tiny-mini", n_latents=3, lora_r=0), engine.embedder)
    name = "model.layers.0.mlp.up_proj.weight"  # a weight no LoRA of ours would touch
    assert (trained.lm.state_dict()[name] - fresh.lm.state_dict()[name]).abs().max() > 1e-4
    again = Policy.load(final, engine.embedder)
    for key, value in trained.lm.state_dict().items():
        torch.testing.assert_close(again.lm.state_dict()[key], value, rtol=0, atol=0)
    assert again.tokenizer.convert_tokens_to_ids("<REFINE>") == trained.refine_id


def test_sft_input_errors_are_clear(sft_inputs: tuple[Path, Path], tmp_path: Path, small_world: Path) -> None:
    data, index = sft_inputs
    with pytest.raises(ConfigError, match="needs `data`"):
        train_sft(SFTConfig(out=str(tmp_path)))
    other = tmp_path / "other_index"
    SearchEngine.load(index).save(other)
    engine = SearchEngine.load(other)
    engine.remove_videos(engine.video_ids[:len(engine) // 2 + 1])
    engine.save(other)
    with pytest.raises(ConfigError, match="not in the index"):
        train_sft(_config(data, other, tmp_path / "out"))
    with pytest.raises(ConfigError, match="batch_size"):
        SFTConfig(batch_size=0)


class Killed(BaseException):
    """A simulated SIGKILL: a BaseException, so no handler of the trainer runs after it."""


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _kill_in_step(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """Die in the `call`-th training step, after the log's last line was cut in the middle of its writing."""
    real, calls = sft._step, []

    def step(*args: object) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(1)
        if len(calls) == call:
            out = Path(args[-2].out)  # type: ignore[attr-defined]
            with (out / "log.jsonl").open("a") as log:
                log.write('{"step": 99, "epo')
            raise Killed
        return real(*args)  # type: ignore[arg-type]
    monkeypatch.setattr(sft, "_step", step)


def _kill_between_renames(monkeypatch: pytest.MonkeyPatch, replacement: int) -> None:
    """Die between the two renames of the `replacement`-th save over an existing `last`: `last` is set aside."""
    real, aside = os.rename, []

    def rename(src: object, dst: object) -> None:
        if Path(dst).name == "last" and aside and not Path(dst).exists():
            if len(aside) == replacement:
                raise Killed
        if Path(src).name == "last":
            aside.append(src)
        real(src, dst)  # type: ignore[arg-type]
    monkeypatch.setattr(os, "rename", rename)


def _kill_while_saving_state(monkeypatch: pytest.MonkeyPatch, save: int) -> None:
    """Die in the middle of writing the `save`-th optimizer state: half of the file is on disk."""
    real, saves = torch.save, []

    def save_state(obj: object, path: object, *args: object, **kwargs: object) -> None:
        saves.append(1)
        real(obj, path, *args, **kwargs)  # type: ignore[arg-type]
        if len(saves) == save:
            os.truncate(path, os.path.getsize(path) // 2)  # type: ignore[arg-type]
            raise Killed
    monkeypatch.setattr(torch, "save", save_state)


def test_a_run_killed_anywhere_resumes_to_the_weights_and_log_of_a_run_never_killed(
        sft_inputs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, index = sft_inputs
    # 2 epochs of 3 steps, a checkpoint every 2; dropout so high that a random state not restored shows
    values = {"epochs": 2, "save_every": 2, "policy": PolicyConfig(preset="tiny-mini", n_latents=3, max_new_tokens=4,
                                                                 lora_dropout=0.5)}
    train_sft(_config(data, index, tmp_path / "never_killed", **values))
    out = tmp_path / "killed"
    kills = [(_kill_in_step, 4),  # steps 1-3 logged, `last` at step 2, the log's last line cut
             (_kill_between_renames, 1),  # resumed at 2, killed as step 4 replaces `last`
             (_kill_while_saving_state, 1)]  # resumed at 4, killed writing step 6's state
    for kill, when in kills:
        with monkeypatch.context() as patch:
            kill(patch, when)
            with pytest.raises(Killed):
                train_sft(_config(data, index, out, **values))
    train_sft(_config(data, index, out, **values))
    expected, log = _log(tmp_path / "never_killed"), _log(out)
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6], "every step logged once, the cut line dropped"
    assert [r["ce"] for r in log] == pytest.approx([r["ce"] for r in expected], abs=2e-4)
    reference, resumed = checkpoint_weights(tmp_path / "never_killed" / "final"), checkpoint_weights(out / "final")
    assert reference.keys() == resumed.keys()
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=1e-5, atol=1e-6, msg=name)
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "final", "last", "log.jsonl"], "no leftovers"


class _RunsCode:
    """Unpickling this object runs code: it creates the file `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return Path.touch, (self.path,)


def test_the_resume_state_loads_without_pickle_and_a_pickled_object_is_refused(
        sft_inputs: tuple[Path, Path], tmp_path: Path) -> None:
    data, index = sft_inputs
    out = tmp_path / "run"
    train_sft(_config(data, index, out, epochs=1, max_examples=4))
    state_file = out / "last" / sft.STATE_FILE
    state = torch.load(state_file, weights_only=True)  # the optimizer and scheduler state load without pickle
    assert state["step"] == 2 and state["scheduler"]["last_epoch"] == 2 and state["optimizer"]["state"]
    state["note"] = _RunsCode(tmp_path / "code_ran")
    torch.save(state, state_file)
    with pytest.raises(CheckpointError, match=f"{state_file}.*cannot be loaded safely"):
        train_sft(_config(data, index, out, epochs=2, max_examples=4))
    assert not (tmp_path / "code_ran").exists(), "nothing of the checkpoint ran"
    del state["note"]
    state["rng"]["numpy"]["key"] = [1, 2, 3]  # plain values where a tensor belongs: our own error, naming the file
    torch.save(state, state_file)
    with pytest.raises(CheckpointError, match=f"{state_file}.*does not hold the trainer state"):
        train_sft(_config(data, index, out, epochs=2, max_examples=4))
    state_file.write_bytes(state_file.read_bytes()[:100])  # damaged: our own error, naming the file
    with pytest.raises(CheckpointError, match=f"{state_file}.*delete"):
        train_sft(_config(data, index, out, epochs=2, max_examples=4))
