"""Qwen3-VL video input: patches and prompt equal to transformers' processor, true timestamps, a tiny model that runs,
and the M-RoPE positions of single-position steps on the KV cache (the SQR latent rollout's use)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import DynamicCache

from videosearch.embed.qwen_vl import (
    QWEN3VL_MAX_PIXELS,
    QWEN3VL_MIN_PIXELS,
    VIDEO_PAD,
    QwenVideoInputs,
    mm_token_type_ids,
    smart_resize,
    tiny_qwen3vl,
    tiny_qwen3vl_tokenizer,
    video_prompt,
    video_to_qwen_inputs,
)
from videosearch.errors import ConfigError, VideoReadError
from videosearch.policy.rollout import qwen3vl_step


@pytest.fixture(scope="module")
def _tiny():
    tokenizer = tiny_qwen3vl_tokenizer()
    torch.manual_seed(0)
    return tiny_qwen3vl(tokenizer).eval(), tokenizer


@pytest.fixture
def config(_tiny):
    """The tiny model's config (shared: tests only read it)."""
    return _tiny[0].config


@pytest.fixture
def tiny(_tiny):
    """The tiny random Qwen3-VL (a private copy) and its byte-level tokenizer, left-padding."""
    model, tokenizer = _tiny
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.padding_side = "left"
    return copy.deepcopy(model), tokenizer


def _frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def _encode(tokenizer, videos: list[QwenVideoInputs], questions: list[str]) -> dict[str, torch.Tensor]:
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": video_prompt(v) + q}], tokenize=False,
                                           add_generation_prompt=True) for v, q in zip(videos, questions)]
    return dict(tokenizer(texts, return_tensors="pt", padding=True))


def test_tiny_model_runs_forward_and_generate_on_real_frames(tiny):
    model, tokenizer = tiny
    video = video_to_qwen_inputs(_frames(6, 48, 64), np.arange(6.0), model.config)
    batch = _encode(tokenizer, [video], ["where is the cat?"])
    grid_t, grid_h, grid_w = video.video_grid_thw[0].tolist()
    assert (batch["input_ids"] == tokenizer.convert_tokens_to_ids(VIDEO_PAD)).sum() == grid_t * grid_h * grid_w // 4
    assert video.num_video_tokens == grid_t * grid_h * grid_w // 4
    inputs = dict(batch, pixel_values_videos=video.pixel_values_videos, video_grid_thw=video.video_grid_thw,
                  mm_token_type_ids=mm_token_type_ids(batch["input_ids"], model.config))
    with torch.no_grad():
        logits = model(**inputs).logits
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert logits.shape == (1, batch["input_ids"].shape[1], model.config.text_config.vocab_size)
    assert out.shape == (1, batch["input_ids"].shape[1] + 3)


def test_patches_are_flattened_in_the_processors_order(config):
    frames = _frames(4, 64, 64)  # already a multiple of 32 within the budget: no resize
    video = video_to_qwen_inputs(frames, np.arange(4.0), config)
    assert video.video_grid_thw.tolist() == [[2, 4, 4]]
    assert video.pixel_values_videos.shape == (32, 3 * 2 * 16 * 16)

    def patch(t: int, y: int, x: int) -> torch.Tensor:  # features in (channel, time, row, column) order
        block = frames[t:t + 2, y:y + 16, x:x + 16].astype(np.float32) / 255.0
        return torch.from_numpy(((block - 0.5) / 0.5).transpose(3, 0, 1, 2).reshape(-1))

    # rows run over 2x2 merge blocks: (0,0) (0,1) (1,0) (1,1) of the first block, then the next block to the right
    expected = {0: patch(0, 0, 0), 1: patch(0, 0, 16), 2: patch(0, 16, 0), 3: patch(0, 16, 16), 4: patch(0, 0, 32),
                8: patch(0, 32, 0), 16: patch(2, 0, 0), 31: patch(2, 48, 48)}
    for row, values in expected.items():
        torch.testing.assert_close(video.pixel_values_videos[row], values, atol=1e-6, rtol=0)


def test_smart_resize_golden_sizes():
    assert smart_resize(6, 48, 64, 32, 2, QWEN3VL_MIN_PIXELS, QWEN3VL_MAX_PIXELS) == (64, 64)
    assert smart_resize(64, 720, 1280, 32, 2, QWEN3VL_MIN_PIXELS, QWEN3VL_MAX_PIXELS) == (448, 832)  # over budget
    assert smart_resize(2, 32, 32, 32, 2, 2 * 64 * 64, QWEN3VL_MAX_PIXELS) == (64, 64)  # under the minimum
    assert smart_resize(2, 20, 30, 32, 2, QWEN3VL_MIN_PIXELS, QWEN3VL_MAX_PIXELS) == (32, 64)  # smaller than a patch


@pytest.mark.parametrize("shape,min_pixels,max_pixels", [
    ((6, 48, 64), QWEN3VL_MIN_PIXELS, QWEN3VL_MAX_PIXELS),
    ((5, 50, 70), QWEN3VL_MIN_PIXELS, QWEN3VL_MAX_PIXELS),  # odd T, resized up
    ((4, 120, 200), 4096, 4 * 64 * 96),  # resized down to the budget
])
def test_equal_to_transformers_qwen3vl_processor(shape, min_pixels, max_pixels):
    pytest.importorskip("torchvision")
    pytest.importorskip("PIL")
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor
    from transformers.video_utils import VideoMetadata

    tokenizer = tiny_qwen3vl_tokenizer()
    config = tiny_qwen3vl(tokenizer).config
    video_processor = Qwen3VLVideoProcessor(size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
                                            image_mean=[0.5] * 3, image_std=[0.5] * 3, do_sample_frames=False,
                                            cap_pixels_per_frame=False)
    processor = Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tokenizer,
                                 video_processor=video_processor, chat_template=tokenizer.chat_template)
    frames = _frames(*shape)
    metadata = VideoMetadata(total_num_frames=shape[0], fps=0.5, frames_indices=list(range(shape[0])),
                             height=shape[1], width=shape[2])
    theirs = processor(text=["<|vision_start|><|video_pad|><|vision_end|>Where?"], videos=[frames],
                       video_metadata=[metadata], return_tensors="pt")
    ours = video_to_qwen_inputs(frames, np.arange(shape[0]) * 2.0, config, min_pixels=min_pixels,
                                max_pixels=max_pixels)
    assert torch.equal(ours.video_grid_thw, theirs["video_grid_thw"])
    torch.testing.assert_close(ours.pixel_values_videos, theirs["pixel_values_videos"], atol=1e-6, rtol=0)
    assert tokenizer.decode(theirs["input_ids"][0]) == video_prompt(ours) + "Where?"
    assert torch.equal(mm_token_type_ids(theirs["input_ids"], config), theirs["mm_token_type_ids"].int())


def test_prompt_keeps_the_true_times_of_sampled_frames(config):
    video = video_to_qwen_inputs(_frames(4, 64, 64), np.array([0.0, 2.0, 4.0, 6.0]), config)  # 0.5 fps
    np.testing.assert_allclose(video.group_times_s, [1.0, 5.0])
    text = video_prompt(video)
    assert text.startswith("<|vision_start|><1.0 seconds><|vision_start|>") and "<5.0 seconds><|vision_start|>" in text
    assert text.count(VIDEO_PAD) == video.num_video_tokens and text.endswith("<|vision_end|><|vision_end|>")
    odd = video_to_qwen_inputs(_frames(3, 64, 64), np.array([0.0, 2.0, 4.0]), config)  # last frame repeated
    np.testing.assert_allclose(odd.group_times_s, [1.0, 4.0])


@pytest.mark.parametrize("frames,times,error,message", [
    (np.zeros((0, 48, 64, 3), np.uint8), np.zeros(0), VideoReadError, "no frames"),
    (np.zeros((2, 48, 64, 3), np.float32), np.arange(2.0), VideoReadError, r"uint8 array \(T, H, W, 3\)"),
    (np.zeros((2, 48, 64), np.uint8), np.arange(2.0), VideoReadError, r"uint8 array \(T, H, W, 3\)"),
    (np.zeros((2, 48, 64, 3), np.uint8), np.arange(3.0), VideoReadError, "one per frame"),
    (np.zeros((2, 48, 64, 3), np.uint8), np.array([1.0, 0.0]), VideoReadError, "non-decreasing"),
])
def test_bad_frames_raise_a_clear_error(config, frames, times, error, message):
    with pytest.raises(error, match=message):
        video_to_qwen_inputs(frames, times, config, source="v1.mp4")


def test_bad_config_raises_config_error(config):
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(ConfigError, match="vision_config"):
        video_to_qwen_inputs(frames, np.arange(2.0), object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_pixels"):
        video_to_qwen_inputs(frames, np.arange(2.0), config, min_pixels=10, max_pixels=5)
    with pytest.raises(ConfigError, match="lacks"):
        tiny_qwen3vl(tiny_qwen3vl_tokenizer(), vocab_size=256)  # the vision tokens' ids are >= 256


def _left_padded_batch(model, tokenizer):
    """Two videos of different grids (so different rope deltas) and questions of different lengths."""
    videos = [video_to_qwen_inputs(_frames(6, 48, 64, seed=1), np.arange(6.0), model.config),
              video_to_qwen_inputs(_frames(4, 64, 128, seed=2), np.arange(4.0) * 2, model.config)]
    batch = _encode(tokenizer, videos, ["find the cat", "a much longer question about a dog"])
    pixels = torch.cat([v.pixel_values_videos for v in videos])
    grids = torch.cat([v.video_grid_thw for v in videos])
    return batch["input_ids"], batch["attention_mask"], pixels, grids


def _full_forward(model, input_ids, attention_mask, pixels, grids, latents):
    """One forward over the tokens then `latents` (B, K, H) as input embeddings: (B, L + K, H) final-norm states."""
    batch, k = latents.shape[0], latents.shape[1]
    embeds = torch.cat([model.get_input_embeddings()(input_ids), latents], 1)
    ids = torch.cat([input_ids, input_ids.new_zeros(batch, k)], 1)  # any text id stands for a latent's position
    mask = torch.cat([attention_mask, attention_mask.new_ones(batch, k)], 1)
    position_ids, _ = model.model.get_rope_index(ids, mm_token_type_ids(ids, model.config), video_grid_thw=grids,
                                                 attention_mask=mask)
    out = model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids, pixel_values_videos=pixels,
                video_grid_thw=grids, output_hidden_states=True)
    return out.hidden_states[-1]


def test_cached_latent_steps_equal_one_full_forward(tiny):
    model, tokenizer = tiny
    input_ids, mask, pixels, grids = _left_padded_batch(model, tokenizer)
    assert (mask == 0).any()  # left padding is exercised
    latents = torch.randn(2, 2, model.config.text_config.hidden_size)
    with torch.no_grad():
        cache = DynamicCache(config=model.config)
        prefill = model(input_ids=input_ids, attention_mask=mask, pixel_values_videos=pixels, video_grid_thw=grids,
                        mm_token_type_ids=mm_token_type_ids(input_ids, model.config), past_key_values=cache,
                        use_cache=True, output_hidden_states=True)
        _, deltas = model.model.get_rope_index(input_ids, mm_token_type_ids(input_ids, model.config),
                                               video_grid_thw=grids, attention_mask=mask)
        assert torch.equal(model.model.rope_deltas, deltas) and deltas[0] != deltas[1]
        deltas = model.model.rope_deltas
        step = lambda embeds, m: qwen3vl_step(model, cache, deltas, embeds, m)[0]  # noqa: E731
        mask_1 = torch.cat([mask, mask.new_ones(2, 1)], 1)
        h_1 = step(latents[:, :1], mask_1)
        h_2 = step(latents[:, 1:], torch.cat([mask_1, mask.new_ones(2, 1)], 1))
        full = _full_forward(model, input_ids, mask, pixels, grids, latents)
    torch.testing.assert_close(prefill.hidden_states[-1][:, -1], full[:, -3], atol=1e-4, rtol=0)
    torch.testing.assert_close(h_1, full[:, -2], atol=1e-4, rtol=0)
    torch.testing.assert_close(h_2, full[:, -1], atol=1e-4, rtol=0)


def test_cached_step_after_generate(tiny):
    model, tokenizer = tiny
    input_ids, mask, pixels, grids = _left_padded_batch(model, tokenizer)
    latent = torch.randn(2, 1, model.config.text_config.hidden_size)
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=mask, pixel_values_videos=pixels,
                             video_grid_thw=grids, mm_token_type_ids=mm_token_type_ids(input_ids, model.config),
                             max_new_tokens=3, do_sample=False, return_dict_in_generate=True)
        sequences, cache = out.sequences, out.past_key_values
        assert cache.get_seq_length() == sequences.shape[1] - 1  # the last generated token is not in the cache yet
        deltas = model.model.rope_deltas
        step = lambda embeds, m: qwen3vl_step(model, cache, deltas, embeds, m)[0]  # noqa: E731
        seq_mask = torch.cat([mask, mask.new_ones(2, sequences.shape[1] - mask.shape[1])], 1)
        h_last = step(model.get_input_embeddings()(sequences[:, -1:]), seq_mask)
        h_latent = step(latent, torch.cat([seq_mask, mask.new_ones(2, 1)], 1))
        full = _full_forward(model, sequences, seq_mask, pixels, grids, latent)
    torch.testing.assert_close(h_last, full[:, -2], atol=1e-4, rtol=0)
    torch.testing.assert_close(h_latent, full[:, -1], atol=1e-4, rtol=0)
