"""Release policy checkpoints (full Qwen3-VL + top-level SQR tensors + query_embedder/) load into our policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from videosearch.corpus.types import VideoFrames
from videosearch.embed import Qwen3VLEmbedder, Qwen3VLEmbedderConfig
from videosearch.embed.qwen_vl import tiny_qwen3vl, tiny_qwen3vl_tokenizer
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.policy.format import REFINE_TOKEN
from videosearch.policy.release import REQUIRED_KEYS, load_release_policy

H = D = HE = 64  # the tiny Qwen3-VL's width, for the policy and the embedder alike


def _heads(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.05

    return {"refine_projector.0.weight": r(D, H), "refine_projector.0.bias": r(D),
            "refine_projector.1.weight": 1 + r(D), "refine_projector.1.bias": r(D),
            "refine_projector.3.weight": r(D, D), "refine_projector.3.bias": r(D),
            "refine_gate.weight": r(1, H), "refine_gate.bias": r(1),
            "refine_latent_input_projector.0.weight": 1 + r(D), "refine_latent_input_projector.0.bias": r(D),
            "refine_latent_input_projector.1.weight": r(H, D), "refine_latent_input_projector.1.bias": r(H),
            "refine_append_input_projector.0.weight": 1 + r(D), "refine_append_input_projector.0.bias": r(D),
            "refine_append_input_projector.1.weight": r(HE, D), "refine_append_input_projector.1.bias": r(HE)}


def write_release_checkpoint(folder: Path, heads: dict[str, torch.Tensor], sharded: bool = False,
                             query_embedder: bool = True) -> Path:
    """A tiny checkpoint in the release's layout: its LM (with <REFINE>) and the SQR tensors at the top level."""
    tokenizer = tiny_qwen3vl_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": [REFINE_TOKEN]})
    torch.manual_seed(1)
    tiny_qwen3vl(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    if sharded:  # the SQR tensors in a shard of their own, as a large checkpoint's index maps them
        save_file(heads, folder / "model-00002-of-00002.safetensors", metadata={"format": "pt"})
        (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
        weight_map = {**{k: "model-00001-of-00002.safetensors" for k in weights},
                      **{k: "model-00002-of-00002.safetensors" for k in heads}}
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 0},
                                                                             "weight_map": weight_map}))
    else:
        save_file({**weights, **heads}, folder / "model.safetensors", metadata={"format": "pt"})
    if query_embedder:
        embed_tokenizer = tiny_qwen3vl_tokenizer()
        torch.manual_seed(2)
        tiny_qwen3vl(embed_tokenizer).save_pretrained(folder / "query_embedder")
        embed_tokenizer.save_pretrained(folder / "query_embedder")
    return folder


@pytest.mark.parametrize("sharded", [False, True])
def test_a_release_checkpoint_loads_and_refines(tmp_path: Path, sharded: bool) -> None:
    heads = _heads()
    policy, embedder = load_release_policy(write_release_checkpoint(tmp_path / "ckpt", heads, sharded))
    assert isinstance(embedder, Qwen3VLEmbedder) and policy.config.preset == "paper"
    state = policy.sqr.state_dict()
    for key in REQUIRED_KEYS:
        torch.testing.assert_close(state[key], heads[key])
    assert policy.sqr.refine_gate.weight.item() == 1.0  # the release's q' is the refined vector itself
    video = VideoFrames("v", np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8),
                        np.arange(4.0), 4.0)
    turn = policy.generate(["the red circle moves left."], [video], mode="sqr")
    latents = policy.refine(turn)
    assert latents.shape == (1, policy.config.n_latents, HE)
    original = torch.from_numpy(embedder.embed_text(["the red circle moves left."]))
    refined = policy.sqr.refined_query(original, embedder.embed_text_with_latents(turn.queries, latents))
    torch.testing.assert_close(refined.norm(dim=-1), torch.ones(1))


def test_partial_and_mismatched_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    heads = _heads()
    partial = {k: v for k, v in heads.items() if not k.startswith("refine_append_input_projector")}
    with pytest.raises(ConfigError, match="lacks the SQR tensors.*refine_append_input_projector.0.weight"):
        load_release_policy(write_release_checkpoint(tmp_path / "partial", partial, query_embedder=False))
    with pytest.raises(ConfigError, match="no query_embedder/ folder"):
        load_release_policy(write_release_checkpoint(tmp_path / "alone", heads, query_embedder=False))
    wide = {**heads, "refine_latent_input_projector.1.weight": torch.zeros(H + 1, D)}
    with pytest.raises(ConfigError, match="do not fit a policy"):
        load_release_policy(write_release_checkpoint(tmp_path / "wide", wide))
    with pytest.raises(ConfigError, match="holds no model.safetensors"):
        load_release_policy(tmp_path / "nothing")


def test_agent_run_takes_a_release_checkpoint(tmp_path: Path, small_world: Path, run_cli) -> None:
    checkpoint = write_release_checkpoint(tmp_path / "ckpt", _heads())
    embedder = Qwen3VLEmbedder.from_pretrained(checkpoint / "query_embedder",
                                               Qwen3VLEmbedderConfig(max_frames=6, segment_frames=0))
    videos = tmp_path / "videos"
    videos.mkdir()
    for path in sorted((small_world / "videos" / "test").iterdir())[:3]:
        (videos / path.name).symlink_to(path)
    engine, _ = SearchEngine.build(videos, embedder)
    engine.save(tmp_path / "index")
    ids = {p.stem for p in videos.iterdir()}
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(line + "\n" for line in (small_world / "test.jsonl").read_text().splitlines()
                               if json.loads(line)["video"] in ids))
    code, out, err = run_cli("agent", "run", tmp_path / "index", "--annotations", queries, "--checkpoint", checkpoint,
                             "--max-turns", "2", "--out", tmp_path / "agent.jsonl")
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "agent.jsonl").read_text().splitlines()]
    assert records and all(r["judgements"] for r in records)
