from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from videosearch.corpus.world_spec import COLOURS, EVENT_KINDS, Actor, Event, VideoSpec
from videosearch.errors import ConfigError
from videosearch.policy.frame_encoder import FrameEncoder, FrameEncoderConfig, stack_neighbours
from videosearch.train.frame_encoder import IGNORE, FrameEncoderTrainConfig, frame_labels, train_frame_encoder

SPEC = VideoSpec("v", "garden", [Actor("circle", "red", "small", 20.0, 16.0), Actor("square", "blue", "large", 40.0,
                                                                                   48.0)],
                 [Event(0, "moves", "left", 1.0, 4.0), Event(1, "turns", "green", 5.0, 7.0),
                  Event(1, "leaves", "right", 8.0, 10.0)], duration_s=12.0)


def test_labels_say_who_is_where_and_what_it_is_doing() -> None:
    labels = frame_labels(SPEC, np.array([0.0, 2.0, 6.5, 11.0]))
    red, blue, green = (list(COLOURS).index(c) for c in ("red", "blue", "green"))
    assert labels["visible"][0, red] == 1 and labels["visible"][0, blue] == 1 and labels["visible"][0].sum() == 2
    assert labels["event"][0, red] == 0 and labels["event"][1, red] == EVENT_KINDS.index("moves") + 1
    assert labels["direction"][1, red] == 1  # left
    assert labels["box"][1, red, 0] < labels["box"][0, red, 0], "moving left: x falls"
    assert labels["visible"][2, green] == 1 and labels["visible"][2, blue] == 0, "the square turned green"
    assert labels["event"][2, green] == EVENT_KINDS.index("turns") + 1
    assert labels["visible"][3, green] == 0 and labels["event"][3, green] == 0, "left the frame: known, not in view"
    assert labels["shape"][3, green] == IGNORE and labels["event"][3, blue] == IGNORE


def test_neighbours_are_stacked_in_time_order_with_edges_repeated() -> None:
    frames = torch.arange(4.0).reshape(1, 4, 1, 1, 1).expand(1, 4, 3, 2, 2)
    stacked = stack_neighbours(frames, 1)
    assert stacked.shape == (1, 4, 9, 2, 2)
    assert stacked[0, :, ::3, 0, 0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]


def test_encoder_features_and_heads_have_one_place_per_colour() -> None:
    config = FrameEncoderConfig(frame_size=32)
    encoder = FrameEncoder(config)
    features = encoder(torch.rand(2, 5, 3, 32, 32))
    assert features.shape == (2, 5, config.feature_dim) == (2, 5, 32 + 8 * 32)
    out = encoder.predict(features)
    assert out["visible"].shape == (2, 5, 8) and out["shape"].shape == (2, 5, 8, 4) and out["scene"].shape == (2, 5, 8)
    with pytest.raises(ConfigError, match="multiple of 8"):
        FrameEncoderConfig(frame_size=30)


def test_training_on_the_world_learns_the_attributes_and_saves_a_frozen_encoder(small_world: Path,
                                                                              tmp_path: Path) -> None:
    config = FrameEncoderTrainConfig(world=str(small_world), out=str(tmp_path / "enc"), epochs=3, batch_size=32,
                                     track_epochs=10, encoder=FrameEncoderConfig(frame_size=32))
    out = train_frame_encoder(config)
    log = __import__("json").loads((out / "train_log.json").read_text())
    first, last = log["history"][0], log["history"][-1]
    assert last["loss"] < first["loss"], "the heads learn"
    assert [h["track_epoch"] for h in log["track_history"]] == [10]
    assert log["track_history"][-1]["track_event_acc"] > 30, "the temporal head beats the 8-way chance"
    encoder = FrameEncoder.from_pretrained(out)
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training
    (out / "frame_encoder.json").write_text("[1]")
    with pytest.raises(ConfigError, match="damaged frame encoder"):
        FrameEncoder.from_pretrained(out)
    with pytest.raises(ConfigError, match="not a trained frame encoder"):
        FrameEncoder.from_pretrained(tmp_path)
