"""The reference release's policy checkpoints, loaded into our `Policy` and retriever; the key mapping lives here.

A release checkpoint is a Qwen3-VL fine-tuned in full (a transformers folder) whose weights also hold the SQR
modules as top-level tensors, beside `model.*` and `lm_head.*`, and a `query_embedder/` folder with the frozen
Qwen3-VL-Embedding it was trained against:

    refine_projector.{0,1,3}.{weight,bias}           -> SQRHead.refine_projector (the same layers)
    refine_latent_input_projector.{0,1}.*            -> SQRHead.refine_latent_input_projector
    refine_append_input_projector.{0,1}.*            -> SQRHead.refine_append_input_projector
    query_embedder_head.{weight,bias} (when He != D) -> SQRHead.query_embedder_head
    refine_gate.{weight,bias}                        -> dropped: the release's Linear(H, 1) gate is off in its
                                                        settings, so q' is the refined vector itself (our gate at 1)

Our policy also keeps `refine_hidden_centre` (zeros here: the release does not centre) and adds its tag tokens
to the vocabulary, each starting at the mean of the pieces the release wrote it with.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from videosearch.embed import Embedder, Qwen3VLEmbedder
from videosearch.errors import ConfigError
from videosearch.policy.policy import CONFIG_FILE, Policy, PolicyConfig

HEAD_MODULES = ("refine_projector", "refine_latent_input_projector", "refine_append_input_projector")
REQUIRED_KEYS = tuple(f"{module}.{layer}.{name}" for module, layers in
                      (("refine_projector", (0, 1, 3)), ("refine_latent_input_projector", (0, 1)),
                       ("refine_append_input_projector", (0, 1)))
                      for layer in layers for name in ("weight", "bias"))
OPTIONAL_PREFIXES = ("query_embedder_head.",)
DROPPED_PREFIXES = ("refine_gate.",)
QUERY_EMBEDDER_DIR = "query_embedder"


def is_release_checkpoint(folder: str | Path) -> bool:
    """A transformers folder without our `policy.json`: the release's layout."""
    folder = Path(folder)
    return not (folder / CONFIG_FILE).exists() and ((folder / "model.safetensors").is_file()
                                                     or (folder / "model.safetensors.index.json").is_file())


def read_release_heads(folder: Path) -> dict[str, torch.Tensor]:
    """The SQR tensors of a release checkpoint (one safetensors file or shards with their index), nothing else."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{index}: unreadable ({type(exc).__name__}: {exc})") from None
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise ConfigError(f"{folder} holds no model.safetensors (nor its index): not a release policy checkpoint")
    heads = {}
    for name in files:
        try:
            with safe_open(str(folder / name), framework="pt") as weights:
                for key in weights.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    if key.startswith(("refine_", *OPTIONAL_PREFIXES)):
                        heads[key] = weights.get_tensor(key)
        except (OSError, SafetensorError) as exc:
            raise ConfigError(f"{folder / name}: unreadable ({type(exc).__name__}: {exc})") from None
    return heads


def load_release_policy(folder: str | Path, embedder: Embedder | None = None) -> tuple[Policy, Embedder]:
    """A release checkpoint as our paper policy (no LoRA: the release fine-tunes in full) and the embedder it was
    trained against (its `query_embedder/` folder unless `embedder` is given)."""
    folder = Path(folder)
    heads = read_release_heads(folder)
    missing = [key for key in REQUIRED_KEYS if key not in heads]
    if missing:
        raise ConfigError(f"{folder} lacks the SQR tensors {missing}: a partial or non-release checkpoint")
    if embedder is None:
        if not (folder / QUERY_EMBEDDER_DIR / "config.json").is_file():
            raise ConfigError(f"{folder} has no {QUERY_EMBEDDER_DIR}/ folder: give the embedder it was trained "
                              "against (a Qwen3-VL-Embedding-2B folder)")
        embedder = Qwen3VLEmbedder.from_pretrained(folder / QUERY_EMBEDDER_DIR)
    latent_dim = int(heads["refine_projector.3.weight"].shape[0])
    config = PolicyConfig(preset="paper", lm_path=str(folder), latent_dim=latent_dim)
    policy = Policy.create(config, embedder, lora=False)
    state = {key: tensor for key, tensor in heads.items() if not key.startswith(DROPPED_PREFIXES)}
    state["refine_gate.weight"] = torch.ones(())
    try:
        missing_here, unexpected = policy.sqr.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        raise ConfigError(f"the SQR tensors of {folder} do not fit a policy of this LM and embedder: "
                          f"{str(exc).splitlines()[1 if len(str(exc).splitlines()) > 1 else 0].strip()}") from None
    missing_here = [k for k in missing_here if not k.startswith("refine_hidden_centre")]
    if missing_here or unexpected:
        raise ConfigError(f"the SQR tensors of {folder} do not map onto our head (missing {missing_here}, "
                          f"unexpected {unexpected})")
    return policy.eval(), embedder
