"""The SQR-head stage: only the head and its gate change, the rest of the checkpoint is SFT's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.policy.policy import Policy, PolicyConfig
from videosearch.train.refiner import RefinerTrainConfig, train_refiner
from videosearch.train.sft import SFTConfig, train_sft


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
