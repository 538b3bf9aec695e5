from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from videosearch.embed.text_tower import bundled_minilm_path
from videosearch.errors import ConfigError
from videosearch.policy.format import REFINE_TOKEN
from videosearch.policy.lm import add_refine_token, load_causal_lm, tiny_llama


def test_refine_token_is_added_once_and_the_embeddings_grow() -> None:
    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm_path())
    model = tiny_llama(vocab_size=len(tokenizer))
    token_id = add_refine_token(model, tokenizer)
    assert tokenizer.convert_ids_to_tokens(token_id) == REFINE_TOKEN
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert add_refine_token(model, tokenizer) == token_id
    assert tokenizer(f"a {REFINE_TOKEN}", add_special_tokens=False)["input_ids"][-1] == token_id


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
