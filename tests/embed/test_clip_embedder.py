from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from videosearch.corpus.types import VideoFrames
from videosearch.embed import ClipEmbedder, ClipEmbedderConfig, load_embedder
from videosearch.embed.clip import save_random_clip
from videosearch.errors import ConfigError
from videosearch.eval.oracle_refine import OracleConfig, optimise_latents

QUERIES = ["the small red circle moves to the left", "a big blue square grows", "yellow triangle enters"]


@pytest.fixture(scope="module", params=["clip", "siglip"])
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP or SigLIP checkpoint folder, as transformers writes it."""
    torch.manual_seed(0)
    return save_random_clip(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture
def embedder(checkpoint: Path) -> ClipEmbedder:
    loaded = load_embedder(checkpoint)
    assert isinstance(loaded, ClipEmbedder)
    return loaded


def _video(n_frames: int, side: int = 48, seed: int = 0) -> VideoFrames:
    frames = np.random.default_rng(seed).integers(0, 256, (n_frames, side, side, 3), dtype=np.uint8)
    return VideoFrames("v", frames, np.arange(n_frames, dtype=np.float64), float(n_frames))


def test_queries_match_the_models_own_text_features(embedder: ClipEmbedder) -> None:
    vectors = embedder.embed_text(QUERIES)
    assert vectors.shape == (3, embedder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    siglip = embedder.family == "siglip"
    limit = embedder.model.text_model.config.max_position_embeddings
    batch = embedder.tokenizer(QUERIES, padding="max_length" if siglip else True, truncation=True, max_length=limit,
                               return_tensors="pt")
    with torch.no_grad():  # what transformers computes: SigLIP without a mask, CLIP with it
        inputs = {"input_ids": batch["input_ids"]} if siglip else dict(batch)
        reference = F.normalize(embedder.model.get_text_features(**inputs).pooler_output, dim=-1)
    np.testing.assert_allclose(vectors, reference.numpy(), atol=1e-5)


def test_latents_move_the_query_and_only_they_get_gradients(embedder: ClipEmbedder) -> None:
    latents = (torch.randn(3, 4, embedder.latent_dim) * embedder.latent_norm).requires_grad_()
    refined = embedder.embed_text_with_latents(QUERIES, latents)
    torch.testing.assert_close(refined.norm(dim=-1), torch.ones(3))
    plain = torch.from_numpy(embedder.embed_text(QUERIES))
    assert (refined - plain).norm(dim=-1).min() > 1e-3  # the pooled position sees the latents
    refined[:, 0].sum().backward()
    assert latents.grad is not None and latents.grad.abs().sum() > 0
    assert all(p.grad is None for p in embedder.model.parameters())


def test_latents_of_one_query_do_not_leak_into_another(embedder: ClipEmbedder) -> None:
    latents = torch.randn(2, 4, embedder.latent_dim)
    both = embedder.embed_text_with_latents(QUERIES[:2], latents)
    alone = embedder.embed_text_with_latents(QUERIES[1:2], latents[1:])
    torch.testing.assert_close(both[1:], alone, atol=1e-5, rtol=1e-4)


def test_a_bad_latent_shape_is_a_clear_error(embedder: ClipEmbedder) -> None:
    with pytest.raises(ValueError, match="latents must be"):
        embedder.embed_text_with_latents(QUERIES, torch.zeros(3, 4, embedder.latent_dim + 1))
    with pytest.raises(ValueError, match="no room for text"):
        embedder.embed_text_with_latents(QUERIES[:1], torch.zeros(1, 64, embedder.latent_dim))


def test_a_video_is_the_mean_of_its_frames_and_segments_cover_it(embedder: ClipEmbedder) -> None:
    short, long = _video(3, seed=1), _video(9, seed=2)
    embeddings = embedder.embed_video([short, long])
    frames = embedder.embed_frames(long.frames)
    assert frames.shape == (9, embedder.dim)
    np.testing.assert_allclose(embeddings[1].vector, F.normalize(frames.mean(0), dim=0).numpy(), atol=1e-5)
    alone = embedder.embed_video([long])[0]  # batching videos together changes nothing
    np.testing.assert_allclose(alone.vector, embeddings[1].vector, atol=1e-5)
    spans = embeddings[1].segment_spans_s
    assert embeddings[1].segment_vectors.shape == (len(spans), embedder.dim)
    assert spans[0, 0] == 0.0 and spans[-1, 1] == 9.0 and (spans[:, 1] > spans[:, 0]).all()
    assert embeddings[0].segment_vectors.shape[0] == 1  # shorter than one window: the whole video
    np.testing.assert_allclose(np.linalg.norm(embeddings[1].segment_vectors, axis=1), 1.0, rtol=1e-5)


def test_frame_batches_do_not_change_the_vectors(checkpoint: Path) -> None:
    video = _video(7, seed=3)
    one, all_at_once = (ClipEmbedder.from_pretrained(checkpoint, ClipEmbedderConfig(frame_batch=b)).embed_frames(
        video.frames) for b in (1, 64))
    torch.testing.assert_close(one, all_at_once, atol=1e-5, rtol=1e-4)


def test_a_saved_embedder_loads_back_the_same(embedder: ClipEmbedder, tmp_path: Path) -> None:
    embedder.save_pretrained(tmp_path / "saved")
    loaded = load_embedder(tmp_path / "saved")
    assert isinstance(loaded, ClipEmbedder) and loaded.model_id == embedder.model_id
    assert loaded.model_id.startswith(f"{embedder.family}-{embedder.dim}d-")
    np.testing.assert_allclose(loaded.embed_text(QUERIES), embedder.embed_text(QUERIES), atol=1e-6)
    assert loaded.config == embedder.config
    assert not (tmp_path / "saved" / "model.safetensors").exists()  # a reference to the checkpoint, not a copy


def test_a_saved_embedder_whose_checkpoint_is_gone_is_a_clear_error(checkpoint: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(checkpoint, moved)
    ClipEmbedder.from_pretrained(moved).save_pretrained(tmp_path / "saved")
    shutil.rmtree(moved)
    with pytest.raises(ConfigError, match="is gone"):
        load_embedder(tmp_path / "saved")


def test_the_checkpoints_image_normalisation_is_used(checkpoint: Path) -> None:
    assert ClipEmbedder.from_pretrained(checkpoint).config.image_mean is not None
    (checkpoint / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.1, 0.2, 0.3],
                                                                      "image_std": [0.4, 0.5, 0.6]}))
    try:
        config = ClipEmbedder.from_pretrained(checkpoint).config
    finally:
        (checkpoint / "preprocessor_config.json").unlink()
    assert config.image_mean == (0.1, 0.2, 0.3) and config.image_std == (0.4, 0.5, 0.6)


def test_bad_folders_and_settings_are_clear_errors(checkpoint: Path, tmp_path: Path) -> None:
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ConfigError, match="neither a saved CLIP-family embedder"):
        ClipEmbedder.from_pretrained(other)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(ConfigError, match="cannot be loaded as a CLIP-family model"):
        load_embedder(broken)
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "config.json").write_text(json.dumps({"kind": "clip", "embedder": {"fsp": 2}}))
    with pytest.raises(ConfigError, match="unknown key.*fsp.*in clip embedder"):
        load_embedder(saved)
    with pytest.raises(ConfigError, match="clip.fps"):
        ClipEmbedderConfig(fps=0)
    with pytest.raises(ConfigError, match="clip.frame_batch"):
        ClipEmbedderConfig(frame_batch=0)


def test_oracle_latents_optimise_through_the_clip_text_tower(embedder: ClipEmbedder) -> None:
    videos = torch.nn.functional.normalize(torch.randn(5, embedder.dim), dim=-1)
    targets = torch.tensor([3, 1])
    latents = optimise_latents(embedder, QUERIES[:2], videos, targets, OracleConfig(n_latents=4, steps=30, lr=0.1))
    refined = embedder.embed_text_with_latents(QUERIES[:2], latents).detach()
    plain = torch.from_numpy(embedder.embed_text(QUERIES[:2]))
    gain = (refined @ videos.T)[[0, 1], targets] - (plain @ videos.T)[[0, 1], targets]
    assert (gain > 0).all()  # the latents move each query towards its target
