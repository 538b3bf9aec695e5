from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videosearch.config import load_config
from videosearch.embed import load_embedder
from videosearch.errors import ConfigError
from videosearch.train.retriever import RetrieverTrainConfig, train_retriever


def test_one_epoch_trains_saves_and_logs(small_world: Path, tmp_path: Path) -> None:
    config = RetrieverTrainConfig(world=str(small_world), out=str(tmp_path / "ret"), epochs=1, batch_videos=16)
    torch.manual_seed(0)
    embedder = train_retriever(config)
    assert (tmp_path / "ret" / "train_log.json").exists() and (tmp_path / "ret" / "config.yaml").exists()
    assert load_embedder(tmp_path / "ret").model_id == embedder.model_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ret"], "written beside, swapped in, nothing left over"


def test_config_from_yaml_and_overrides(tmp_path: Path) -> None:
    preset = Path(__file__).resolve().parents[2] / "configs" / "mini.yaml"
    config = load_config(RetrieverTrainConfig, preset, "retriever", ["epochs=2", "video_tower.layers=1"], world="w")
    assert config.epochs == 2 and config.video_tower.layers == 1 and config.video_tower.channels == (32, 64, 64)
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(RetrieverTrainConfig, preset, "retriever", ["epoch=2"], world="w")
    with pytest.raises(ConfigError, match="world is required"):
        load_config(RetrieverTrainConfig, preset, "retriever")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(RetrieverTrainConfig, None, None, ["epochs"], world="w")


def test_training_on_a_folder_that_is_not_a_world_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="world generate"):
        train_retriever(RetrieverTrainConfig(world=str(tmp_path), out=str(tmp_path / "out")))


def test_a_world_too_small_for_two_steps_is_a_clear_error(small_world: Path, tmp_path: Path) -> None:
    config = RetrieverTrainConfig(world=str(small_world), out=str(tmp_path / "ret"), epochs=1, batch_videos=10_000)
    with pytest.raises(ConfigError, match="raise epochs or lower batch_videos"):
        train_retriever(config)
    assert not (tmp_path / "ret").exists()
