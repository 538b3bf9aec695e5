from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from videosearch.corpus.video import read_frames
from videosearch.embed import MiniEmbedder, load_embedder
from videosearch.errors import ConfigError
from videosearch.eval.oracle_refine import initial_latents

SENTENCES = [
    "In the kitchen, the small red circle moves to the left.",
    "The big blue square grows bigger in the sunny garden.",
    "A yellow triangle enters from the right on the sandy beach.",
    "The purple diamond jumps up and down in the office.",
    "Before the white ball shrinks, the black box slides right in the desert.",
    "The orange rhombus changes colour to green in the snowy field.",
    "In the bedroom, the little green triangle leaves to the left.",
    "The large black circle drops toward the bottom on a dark street.",
]


def test_text_vectors_are_unit_float32(mini_embedder: MiniEmbedder) -> None:
    vectors = mini_embedder.embed_text(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_gradients_reach_the_latents_and_not_the_frozen_text_tower(mini_embedder: MiniEmbedder) -> None:
    latents = torch.randn(2, 8, mini_embedder.latent_dim, requires_grad=True)
    refined = mini_embedder.embed_text_with_latents(SENTENCES[:2], latents)
    assert refined.shape == (2, 384)
    torch.testing.assert_close(refined.norm(dim=-1), torch.ones(2))
    refined[:, 0].sum().backward()
    assert latents.grad is not None and latents.grad.abs().sum() > 0 and torch.isfinite(latents.grad).all()
    assert all(p.grad is None for p in mini_embedder.text.encoder.parameters())


def test_neutral_latents_leave_each_query_closest_to_itself(mini_embedder: MiniEmbedder) -> None:
    """An identity-initialised latent path (latents = the query's own mean token embedding) keeps rankings sensible."""
    plain = mini_embedder.embed_text(SENTENCES)
    with torch.no_grad():
        refined = mini_embedder.embed_text_with_latents(SENTENCES, initial_latents(mini_embedder, SENTENCES, 8))
    scores = refined.numpy() @ plain.T
    assert (scores.argmax(1) == np.arange(len(SENTENCES))).all()
    assert np.diag(scores).min() > 0.8


def test_latents_of_the_wrong_shape_are_refused(mini_embedder: MiniEmbedder) -> None:
    with pytest.raises(ValueError, match="latents must be"):
        mini_embedder.embed_text_with_latents(SENTENCES[:2], torch.zeros(2, 8, 17))


def test_video_embedding_has_segments_with_true_time_spans(mini_embedder: MiniEmbedder, small_world: Path) -> None:
    path = sorted((small_world / "videos" / "test").glob("*.mp4"))[0]
    video = read_frames(path, fps=1.0, size=(32, 32))
    (embedding,) = mini_embedder.embed_video([video])
    assert embedding.vector.shape == (384,)
    assert embedding.segment_vectors.shape[0] == embedding.segment_spans_s.shape[0] >= 1
    spans = embedding.segment_spans_s
    assert spans[0, 0] == 0.0 and (spans[:, 1] > spans[:, 0]).all() and spans[-1, 1] <= video.duration_s + 1e-6


def test_save_and_load_round_trip(mini_embedder: MiniEmbedder, tmp_path: Path, small_world: Path) -> None:
    mini_embedder.save_pretrained(tmp_path / "emb")
    loaded = load_embedder(tmp_path / "emb")
    assert loaded.model_id == mini_embedder.model_id
    video = read_frames(sorted((small_world / "videos" / "val").glob("*.mp4"))[0], size=(32, 32))
    np.testing.assert_allclose(loaded.embed_video([video])[0].vector, mini_embedder.embed_video([video])[0].vector,
                               atol=1e-6)


def test_loading_a_folder_that_is_not_an_embedder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="retriever train"):
        load_embedder(tmp_path)
