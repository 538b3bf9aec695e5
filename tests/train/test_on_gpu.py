"""The trainers on a CUDA device: weights, text tower and corpus vectors follow it (skipped without a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from videosearch.policy.policy import PolicyConfig
from videosearch.train.retriever import RetrieverTrainConfig, train_retriever
from videosearch.train.sft import SFTConfig, train_sft

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_sft_trains_on_the_gpu(sft_inputs: tuple[Path, Path], tmp_path: Path) -> None:
    data, index = sft_inputs
    config = SFTConfig(data=str(data), index=str(index), out=str(tmp_path / "run"), batch_size=2, max_examples=4,
                       warmup_steps=1, negatives=10, infonce_weight=0.3,
                       policy=PolicyConfig(preset="tiny-mini", n_latents=3, max_new_tokens=4))
    final = train_sft(config)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert (final / "policy.json").is_file() and len(log) == 2 and all(r["ce"] > 0 for r in log)


def test_the_retriever_trains_on_the_gpu(small_world: Path, tmp_path: Path) -> None:
    embedder = train_retriever(RetrieverTrainConfig(world=str(small_world), out=str(tmp_path / "retriever"),
                                                    epochs=1, eval_every=1))
    assert embedder.embed_text(["a red circle"]).shape[0] == 1
