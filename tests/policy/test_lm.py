from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from videosearch.embed.text_tower import bundled_minilm_path
from videosearch.errors import ConfigError
from videosearch.policy.lm import convert_smollm2, load_causal_lm, tiny_llama, tiny_tokenizer


def test_tiny_tokenizer_round_trips_exactly_and_has_a_chat_template() -> None:
    tokenizer = tiny_tokenizer()
    text = tokenizer.apply_chat_template([{"role": "user", "content": "héllo <think>x</think>"}], tokenize=False,
                                         add_generation_prompt=True)
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    assert text.endswith("<|im_start|>assistant\n") and tokenizer.eos_token == "<|im_end|>"


def test_tiny_model_round_trips_through_save_and_load(tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm_path())
    model = tiny_llama(vocab_size=len(tokenizer))
    model.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    loaded, _ = load_causal_lm(tmp_path / "lm")
    assert loaded.config.hidden_size == model.config.hidden_size


def test_loading_a_folder_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config.json"):
        load_causal_lm(tmp_path)


def test_smollm2_converts_once_from_the_bundled_gguf_and_loads_offline(tmp_path: Path) -> None:
    folder = convert_smollm2(tmp_path)
    assert (folder / "config.json").exists() and list(folder.glob("*.safetensors"))
    assert convert_smollm2(tmp_path) == folder, "a second call reuses the converted folder"
    model, tokenizer = load_causal_lm(folder)
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.hidden_size == 576
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
