from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.policy.policy import Policy, PolicyConfig
from videosearch.train.sft import SFTConfig, info_nce, train_sft
from videosearch.train.sft_data import build_world_sft_data, write_sft_examples


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


@pytest.fixture
def sft_inputs(small_world: Path, engine: SearchEngine, tmp_path: Path) -> tuple[Path, Path]:
    engine.save(tmp_path / "index")
    examples, _ = build_world_sft_data(small_world, tmp_path / "index", "test", seed=0, max_examples=6)
    write_sft_examples(tmp_path / "sft.jsonl", examples)
    return tmp_path / "sft.jsonl", tmp_path / "index"


def _config(data: Path, index: Path, out: Path, **values: object) -> SFTConfig:
    policy = PolicyConfig(preset="tiny-mini", n_latents=3, max_new_tokens=4)
    # 10 of the 12 videos as negatives: the untrained tower scores a family's videos almost alike, so the
    # ambiguity filter drops the nearest ones
    return SFTConfig(data=str(data), index=str(index), out=str(out), policy=policy, batch_size=2, save_every=1,
                     warmup_steps=1, negatives=10, **values)  # type: ignore[arg-type]


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
