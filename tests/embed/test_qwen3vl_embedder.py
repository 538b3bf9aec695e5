from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from videosearch.corpus.types import VideoFrames
from videosearch.embed import Qwen3VLEmbedder, Qwen3VLEmbedderConfig, load_embedder
from videosearch.embed.qwen_vl import tiny_qwen3vl, tiny_qwen3vl_tokenizer
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError

QUERIES = ["the red circle moves left.", "a big blue square grows.", "yellow triangle enters."]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3-VL saved as transformers saves Qwen3-VL-Embedding (ForConditionalGeneration)."""
    folder = tmp_path_factory.mktemp("qwen3vl")
    tokenizer = tiny_qwen3vl_tokenizer()
    torch.manual_seed(0)
    tiny_qwen3vl(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def embedder(checkpoint: Path) -> Qwen3VLEmbedder:
    loaded = load_embedder(checkpoint)
    assert isinstance(loaded, Qwen3VLEmbedder)
    return loaded


def _video(n_frames: int, seed: int = 0) -> VideoFrames:
    frames = np.random.default_rng(seed).integers(0, 256, (n_frames, 64, 64, 3), dtype=np.uint8)
    return VideoFrames("v", frames, np.arange(n_frames, dtype=np.float64) * 1.5, n_frames * 1.5)


def test_queries_are_unit_vectors_and_padding_changes_nothing(embedder: Qwen3VLEmbedder) -> None:
    together = embedder.embed_text(QUERIES)
    assert together.shape == (3, 64) and together.dtype == np.float32 and embedder.dim == 64
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    alone = np.concatenate([embedder.embed_text([q]) for q in QUERIES])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert embedder.embed_text([]).shape == (0, 64)


def test_the_query_goes_through_the_release_template(embedder: Qwen3VLEmbedder) -> None:
    text = embedder._template("hello")
    assert "Represent the user's input." in text and text.index("hello") < text.rindex("assistant")
    ids = embedder.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = embedder.model(input_ids=ids).last_hidden_state[0, -1]
    np.testing.assert_allclose(embedder.embed_text(["hello"])[0], torch.nn.functional.normalize(hidden, dim=0),
                               atol=1e-5)


def test_matryoshka_keeps_the_first_dimensions_renormalised(checkpoint: Path, embedder: Qwen3VLEmbedder) -> None:
    short = Qwen3VLEmbedder.from_pretrained(checkpoint, Qwen3VLEmbedderConfig(dim=16))
    full = embedder.embed_text(QUERIES)
    expected = full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True)
    np.testing.assert_allclose(short.embed_text(QUERIES), expected, atol=1e-5)
    assert short.model_id != embedder.model_id and short.model_id.startswith("qwen3vl-emb-16d-")


def test_latents_go_before_the_querys_last_token(embedder: Qwen3VLEmbedder) -> None:
    # byte-level tokenizer: latents equal to the embeddings of "ZZ" read as if "ZZ" stood before the full stop
    zz = embedder.tokenizer("ZZ", add_special_tokens=False, return_tensors="pt")["input_ids"]
    latents = embedder.model.get_input_embeddings()(zz).detach().expand(2, -1, -1)
    refined = embedder.embed_text_with_latents(QUERIES[:2], latents)
    expected = embedder.embed_text([q[:-1] + "ZZ" + q[-1] for q in QUERIES[:2]])
    np.testing.assert_allclose(refined.detach().numpy(), expected, atol=1e-5)


def test_gradients_reach_the_latents_only(embedder: Qwen3VLEmbedder) -> None:
    latents = torch.randn(2, 4, embedder.latent_dim, requires_grad=True)
    refined = embedder.embed_text_with_latents(QUERIES[:2], latents)
    torch.testing.assert_close(refined.norm(dim=-1), torch.ones(2))
    refined[:, 0].sum().backward()
    assert latents.grad is not None and latents.grad.abs().sum() > 0
    assert all(p.grad is None for p in embedder.model.parameters())
    with pytest.raises(ValueError, match="latents must be"):
        embedder.embed_text_with_latents(QUERIES[:2], torch.zeros(2, 4, 3))


def test_a_video_and_its_segments(embedder: Qwen3VLEmbedder) -> None:
    video = _video(10, seed=1)
    embedding = embedder.embed_video([video])[0]
    whole = embedder.embed_clips([(video.frames, video.timestamps_s)])[0].numpy()
    np.testing.assert_allclose(embedding.vector, whole, atol=1e-5)
    spans = embedding.segment_spans_s  # frames [0, 8) and [2, 10), each to one sampling step past its last
    assert embedding.segment_vectors.shape == (2, 64)
    np.testing.assert_allclose(spans, [[0.0, 11.5], [3.0, 14.5]])
    batched = embedder.embed_clips([(video.frames[:4], video.timestamps_s[:4]), (video.frames, video.timestamps_s)])
    np.testing.assert_allclose(batched[1].numpy(), whole, atol=1e-4)  # a shorter clip beside it changes nothing


def test_the_true_frame_times_reach_the_model(embedder: Qwen3VLEmbedder) -> None:
    video = _video(4, seed=2)
    slow = embedder.embed_clips([(video.frames, video.timestamps_s), (video.frames, video.timestamps_s * 10)])
    assert np.abs(slow[0].numpy() - slow[1].numpy()).max() > 1e-4


def test_saved_as_a_reference_and_loaded_back(embedder: Qwen3VLEmbedder, tmp_path: Path) -> None:
    embedder.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["config.json"]
    loaded = load_embedder(tmp_path / "saved")
    assert isinstance(loaded, Qwen3VLEmbedder) and loaded.model_id == embedder.model_id
    np.testing.assert_allclose(loaded.embed_text(QUERIES[:1]), embedder.embed_text(QUERIES[:1]), atol=1e-6)


def test_an_index_of_world_videos_answers_queries(small_world: Path, checkpoint: Path, tmp_path: Path) -> None:
    embedder = Qwen3VLEmbedder.from_pretrained(checkpoint, Qwen3VLEmbedderConfig(max_frames=8, segment_frames=4))
    videos = sorted((small_world / "videos" / "test").iterdir())[:3]
    folder = tmp_path / "videos"
    folder.mkdir()
    for path in videos:
        (folder / path.name).symlink_to(path)
    engine, result = SearchEngine.build(folder, embedder)
    assert not result.skipped and len(engine) == 3
    engine.save(tmp_path / "index")
    hits = SearchEngine.load(tmp_path / "index").search("a circle moves", k=3)
    assert sorted(h.video_id for h in hits) == sorted(p.stem for p in videos)
    assert all(0 <= h.start_s < h.end_s for h in hits)


def test_bad_settings_and_folders_are_clear_errors(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exceeds the model's 64 dimensions"):
        Qwen3VLEmbedder.from_pretrained(checkpoint, Qwen3VLEmbedderConfig(dim=65))
    for bad in ({"fps": 0}, {"max_frames": 0}, {"dim": -1}, {"dtype": "int8"}):
        with pytest.raises(ConfigError, match="qwen3vl."):
            Qwen3VLEmbedderConfig(**bad)
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "config.json").write_text(json.dumps({"kind": "qwen3vl", "embedder": {"fsp": 1}}))
    with pytest.raises(ConfigError, match="unknown key.*fsp.*in qwen3vl embedder"):
        load_embedder(saved)
    gone = {"kind": "qwen3vl", "embedder": {"model_path": str(tmp_path / "x")}}
    (saved / "config.json").write_text(json.dumps(gone))
    with pytest.raises(ConfigError, match="is gone"):
        load_embedder(saved)


def test_text_after_a_batch_of_videos_is_unchanged(embedder: Qwen3VLEmbedder) -> None:
    latents = torch.randn(1, 3, embedder.latent_dim)
    before = embedder.embed_text_with_latents(QUERIES[:1], latents).detach()
    video = _video(4, seed=3)
    embedder.embed_clips([(video.frames, video.timestamps_s)] * 2)  # the model keeps this call's position offsets
    after = embedder.embed_text_with_latents(QUERIES[:1], latents).detach()
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(embedder.embed_text(QUERIES[:1]), embedder.embed_text(QUERIES[:1]), atol=1e-6)


def test_index_build_takes_the_embedder_section_of_a_preset(small_world: Path, checkpoint: Path, tmp_path: Path,
                                                            run_cli) -> None:
    preset = tmp_path / "preset.yaml"
    preset.write_text("embedder:\n  model_path: nowhere\n  max_frames: 4\n  segment_frames: 0\n")
    videos = tmp_path / "videos"
    videos.mkdir()
    for path in sorted((small_world / "videos" / "test").iterdir())[:2]:
        (videos / path.name).symlink_to(path)
    code, out, err = run_cli("index", "build", "--videos", videos, "--out", tmp_path / "index", "--config", preset,
                             "--embedder", checkpoint)
    assert code == 0, err
    engine = SearchEngine.load(tmp_path / "index")
    assert isinstance(engine.embedder, Qwen3VLEmbedder) and engine.embedder.config.max_frames == 4
    assert all(len(engine.segments[v].vectors) == 1 for v in engine.video_ids)  # segment_frames 0: the whole video
    code, out, err = run_cli("index", "build", "--videos", videos, "--out", tmp_path / "index2", "--config", preset)
    assert code == 2 and "nowhere" in err


def test_segments_keep_the_whole_videos_resolution(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import videosearch.embed.qwen3vl as qwen3vl

    grids, original = [], qwen3vl.video_to_qwen_inputs

    def recording(*args: object, **kwargs: object) -> object:
        inputs = original(*args, **kwargs)
        grids.append(tuple(inputs.video_grid_thw[0, 1:].tolist()))
        return inputs

    monkeypatch.setattr(qwen3vl, "video_to_qwen_inputs", recording)
    # 10 frames of 128x128 over a budget of 10 frames of 64x64: a segment of 4 frames given the whole budget would
    # be read at 96x96, more than twice the pixels of the video's own frames
    embedder = Qwen3VLEmbedder.from_pretrained(checkpoint, Qwen3VLEmbedderConfig(
        max_frames=10, segment_frames=4, segment_stride=2, total_pixels=10 * 64 * 64))
    frames = np.random.default_rng(4).integers(0, 256, (10, 128, 128, 3), dtype=np.uint8)
    embedding = embedder.embed_video([VideoFrames("v", frames, np.arange(10.0), 10.0)])[0]
    assert len(grids) == 1 + len(embedding.segment_vectors) == 5
    assert set(grids) == {(4, 4)}  # 64x64 in patches of 16
