"""What a refinement of the query could add to the walk, measured without the policy's judge, and what the SQR
head's latents carry.

Run: `python bench/refine_headroom.py [--world runs/world] [--train-index runs/index_train] [--index runs/index]
[--checkpoint DIR --data SFT.jsonl --data-index IDX]` (about 3 minutes here; with `--checkpoint`, about 1 more).

Each test episode has a perfect judge: it shows the best-ranked video not yet shown, up to 3 turns, and stops on
the ground truth. The walk keeps the query (exclusion only). Every other row replaces the query after each
rejection with a refinement of it:
- `away_from_shown_<b>`: normalize(q - b * v_shown), pushing the query away from what was rejected;
- `rewrite`: the text HQR writes (the claim restated in the event log's words), embedded;
- learned on the train split's top-1 misses (cross-entropy over the whole corpus at temperature 0.05, the
  shown video excluded), none of which sees the test split: `linear_q` normalize(q + W q + b);
  `linear_q_shown` with the shown video's vector as a second input; `latent_prompt`: 8 learned vectors
  inserted into the text tower, the same for every query, mixed in by the SQR head's gate (what an SQR head
  reaches when its latents do not depend on the query); `latents_from_q`: those 8 vectors a linear map of q.
With `--checkpoint` (a policy) and `--data` (its SFT examples), it also prints how much the SQR latents of 32
not-matched turns differ from each other: mean pairwise cosine of the hidden state at `<REFINE>`, of z_1, of all
latents and of the query vectors. Ends with one JSON line of every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from videosearch.agent.videos import VideoCache
from videosearch.corpus.world_queries import Claim
from videosearch.engine import SearchEngine
from videosearch.errors import VideosearchError
from videosearch.policy.policy import Policy
from videosearch.policy.rollout import rollout_latents
from videosearch.policy.sqr import RefineGate, SQRHead
from videosearch.train.reasoning import rewrite_query
from videosearch.train.sft_data import read_sft_examples

TURNS, TAU, N_LATENTS = 3, 0.05, 8
Refine = Callable[[int, int], torch.Tensor]  # (query row, shown video row) -> (D,) refined unit query


class Split:
    """The queries of one world split and the index over its videos, as tensors."""

    def __init__(self, world: Path, split: str, index: Path) -> None:
        engine = SearchEngine.load(index)
        self.embedder = engine.embedder
        row = {video_id: i for i, video_id in enumerate(engine.video_ids)}
        lines = [json.loads(line) for line in (world / f"{split}.jsonl").read_text().splitlines() if line]
        lines = [a for a in lines if a["video"] in row]
        if not lines:
            raise VideosearchError(f"{index} holds none of the videos of {world / split}.jsonl")
        self.texts = [a["fig_desc"] for a in lines]
        self.rewrites = [rewrite_query(Claim.from_dict(a["claim"])) for a in lines]
        self.queries = torch.from_numpy(self.embedder.embed_text(self.texts))
        self.videos = torch.from_numpy(engine.store.get_vectors(engine.video_ids))
        self.truth = torch.tensor([row[a["video"]] for a in lines])


def walk(split: Split, refine: Refine | None) -> float:
    """VR R@1 (%) after up to TURNS turns with a perfect judge; `refine` replaces the query after a rejection."""
    found = 0
    with torch.no_grad():
        for i in range(len(split.truth)):
            query, shown = split.queries[i], []
            for _ in range(TURNS):
                scores = split.videos @ query
                scores[shown] = -9.0
                top = int(scores.argmax())
                if top == int(split.truth[i]):
                    found += 1
                    break
                shown.append(top)
                if refine is not None:
                    query = refine(i, top)
    return round(100.0 * found / len(split.truth), 1)


def train_on_misses(train: Split, refine_batch: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    params: list[torch.nn.Parameter], steps: int, lr: float, batch: int) -> None:
    """Fit `refine_batch(query rows, shown rows) -> (B, D)` on the train split's top-1 misses."""
    shown = (train.queries @ train.videos.T).argmax(1)
    misses = (shown != train.truth).nonzero()[:, 0]
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        rows = misses[torch.randint(len(misses), (batch,), generator=generator)]
        logits = refine_batch(rows, shown[rows]) @ train.videos.T / TAU
        logits[torch.arange(batch), shown[rows]] = float("-inf")
        loss = torch.nn.functional.cross_entropy(logits, train.truth[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def linear_refiner(train: Split, test: Split, with_shown: bool, steps: int) -> Refine:
    """normalize(q + W x + b), x = q or [q; v_shown], W and b from 0."""
    dim = train.queries.shape[1]
    layer = torch.nn.Linear(dim * (2 if with_shown else 1), dim)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)

    def refined(queries: torch.Tensor, shown: torch.Tensor) -> torch.Tensor:
        x = torch.cat([queries, shown], 1) if with_shown else queries
        return torch.nn.functional.normalize(queries + layer(x), dim=-1)

    train_on_misses(train, lambda q, s: refined(train.queries[q], train.videos[s]), list(layer.parameters()),
                    steps=steps, lr=1e-3, batch=64)
    return lambda i, top: refined(test.queries[i:i + 1], test.videos[top:top + 1])[0]


def text_tower_refiner(train: Split, test: Split, from_query: bool, steps: int) -> Refine:
    """8 latents inserted into the text tower (a constant prompt, or a linear map of q), through the SQR head's
    input projector and gate, as the policy's latents go in."""
    torch.manual_seed(0)
    embedder, dim = train.embedder, train.queries.shape[1]
    head = SQRHead(dim, dim, dim, embedder_norm=embedder.latent_norm)
    source = torch.nn.Linear(dim, N_LATENTS * dim)
    torch.nn.init.normal_(source.weight, std=0.02)
    torch.nn.init.zeros_(source.bias)
    prompt = torch.nn.Parameter(torch.randn(1, N_LATENTS, dim) * 0.02)
    gate = RefineGate()

    def refined(texts: list[str], queries: torch.Tensor) -> torch.Tensor:
        latents = source(queries).view(len(texts), N_LATENTS, dim) if from_query else prompt.expand(
            len(texts), -1, -1)
        with_latents = embedder.embed_text_with_latents(texts, head.refine_append_input_projector(latents))
        return gate(queries, with_latents)

    params = [*head.refine_append_input_projector.parameters(), *gate.parameters(),
              *(source.parameters() if from_query else [prompt])]
    train_on_misses(train, lambda q, s: refined([train.texts[i] for i in q], train.queries[q]), params,
                    steps=steps, lr=1e-2, batch=32)
    return lambda i, top: refined([test.texts[i]], test.queries[i:i + 1])[0]


def latent_spread(checkpoint: Path, data: Path, index: Path) -> dict[str, float]:
    """Mean pairwise cosine, over 32 not-matched SFT turns, of what the SQR head reads and writes."""
    engine = SearchEngine.load(index)
    examples = [e for e in read_sft_examples(data) if e.mode == "sqr" and not e.matched][:32]
    if len(examples) < 2:
        raise VideosearchError(f"{data} holds fewer than 2 not-matched SQR examples")
    policy = Policy.load(checkpoint, engine.embedder, trainable=True).eval()
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)

    def spread(x: torch.Tensor) -> float:
        x = torch.nn.functional.normalize(x.flatten(1), dim=-1)
        cosines = x @ x.T
        return round(float((cosines.sum() - cosines.diag().sum()) / (len(x) * (len(x) - 1))), 3)

    with torch.no_grad():
        state = policy.sft_forward([e.query for e in examples], [videos[e.video_id] for e in examples],
                                   [e.target for e in examples], [e.mode for e in examples])
        latents = rollout_latents(policy.vision.step_fn(policy.lm, state.cache), policy.sqr, state.refine_hidden,
                                  state.attention_mask, policy.config.n_latents)
        queries = torch.from_numpy(engine.embedder.embed_text([e.query for e in examples]))
        inserted_norm = round(float(policy.sqr.to_embedder(latents).norm(dim=-1).mean()), 2)
    return {"hidden_at_refine": spread(state.refine_hidden), "z1": spread(latents[:, 0]),
            "all_latents": spread(latents), "queries": spread(queries), "inserted_latent_norm": inserted_norm}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("runs/world"))
    parser.add_argument("--train-index", type=Path, default=Path("runs/index_train"))
    parser.add_argument("--index", type=Path, default=Path("runs/index"), help="index over the test videos")
    parser.add_argument("--linear-steps", type=int, default=600, help="Adam steps of the linear refiners")
    parser.add_argument("--latent-steps", type=int, default=150, help="Adam steps of the text-tower refiners")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a policy whose SQR latents are measured")
    parser.add_argument("--data", type=Path, default=Path("runs/sft_data/train.jsonl"), help="its SFT examples")
    parser.add_argument("--data-index", type=Path, default=Path("runs/index_train"), help="index over their videos")
    args = parser.parse_args(argv)
    try:
        train, test = Split(args.world, "train", args.train_index), Split(args.world, "test", args.index)
        rewrites = torch.from_numpy(test.embedder.embed_text(test.rewrites))
        result: dict[str, object] = {"walk": walk(test, None)}
        for beta in (0.1, 0.3):
            result[f"away_from_shown_{beta}"] = walk(test, lambda i, top, b=beta: torch.nn.functional.normalize(
                test.queries[i] - b * test.videos[top], dim=-1))
        result["rewrite"] = walk(test, lambda i, top: rewrites[i])
        result["linear_q"] = walk(test, linear_refiner(train, test, False, args.linear_steps))
        result["linear_q_shown"] = walk(test, linear_refiner(train, test, True, args.linear_steps))
        result["latent_prompt"] = walk(test, text_tower_refiner(train, test, False, args.latent_steps))
        result["latents_from_q"] = walk(test, text_tower_refiner(train, test, True, args.latent_steps))
        if args.checkpoint is not None:
            result["latent_spread"] = latent_spread(args.checkpoint, args.data, args.data_index)
    except VideosearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    width = max(len(k) for k in result)
    for name, value in result.items():
        print(f"{name:<{width}}  {value}")
    print(json.dumps({"bench": "refine_headroom", "turns": TURNS, "queries": len(test.truth), **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
