"""A stage that trains only the SQR head, with many more InfoNCE steps than SFT can afford on a CPU.

    config = load_config(RefinerTrainConfig, "configs/mini.yaml", "refiner")
    train_refiner(config)        # <out>: the checkpoint with the refined head, calibration kept

The policy's LM, LoRA and vision stay as SFT left them (the LoRA merged while the stage runs), so each batch's
prompt and target are prefilled once, without gradient, and the cache is kept (fp16) for every epoch: a step is
then only the latent rollout on that cache, the embedder and InfoNCE, differentiated down to the SQR head. Turns
of like token lengths share a batch, so little of the prefill is padding. Only not-matched SQR examples with a known
ground truth are used: at inference the refiner runs after a rejection, at any turn, so the data holds later turns
too (`build_world_refine_turns`: the walk's second wrong video, with the first one `seen`). A held-out share of
them scores the head after every epoch (and before the first, where q' = q); the epoch with the lowest held-out
InfoNCE is kept, so the stage never ships a head that scores unseen turns worse than the original query does.
The gate of the refined query (`refine_gate`) learns at its own rate. The first batch sets the centre the head
subtracts from each hidden state it reads (`refine_hidden_centre`); later batches move it with `centre_momentum`,
since the hidden states of the latent steps follow the head as it learns.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel

from videosearch.agent.videos import VideoCache
from videosearch.atomic import write_text_atomic
from videosearch.config import save_config
from videosearch.embed.base import Embedder
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.folders import check_replaceable, publish_folder
from videosearch.policy.policy import Policy
from videosearch.policy.rollout import rollout_latents
from videosearch.progress import progress, track
from videosearch.train.calibrate import REPORT_FILE
from videosearch.train.sft import SFTConfig, info_nce
from videosearch.train.sft_data import SFTExample, read_sft_examples

logger = logging.getLogger(__name__)
LOG_FILE = "refiner_log.jsonl"  # also the mark of this stage's output folder


@dataclass
class RefinerTrainConfig:
    """The SQR-head stage: `checkpoint` (an SFT policy), `data` and `index` as for SFT, `out` a new checkpoint."""

    checkpoint: str | None = None
    data: str | None = None
    index: str | None = None
    out: str | None = None
    epochs: int = 8  # passes over the cached turns; the best epoch on the held-out turns is kept
    holdout: float = 0.2  # the share of turns that only score the head (0: keep the last epoch)
    batch_size: int = 16
    lr: float = 1e-3
    gate_lr: float = 1e-2
    tau: float = 0.1
    negatives: int = 24
    ambiguity_margin: float = 0.0005
    centre_momentum: float = 0.1  # how fast `refine_hidden_centre` follows the hidden states the head reads
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.gate_lr <= 0:
            raise ConfigError("refiner: epochs and batch_size must be >= 1, lr and gate_lr > 0")
        if not 0 < self.centre_momentum <= 1:
            raise ConfigError("refiner: centre_momentum must be in (0, 1]")
        if not 0 <= self.holdout < 1:
            raise ConfigError("refiner: holdout must be in [0, 1)")


@dataclass
class Prefilled:
    """One batch of turns, prefilled once: the KV cache up to `<REFINE>` (fp16 between steps), what InfoNCE needs."""

    queries: list[str]
    cache: object
    kv: list[tuple[torch.Tensor, torch.Tensor]]  # fp16 (keys, values) of each layer, the prompt and target only
    refine_hidden: torch.Tensor  # (B, H)
    attention_mask: torch.Tensor  # (B, L)
    original: torch.Tensor  # (B, D) q
    positives: torch.Tensor  # long (B,) ground-truth rows of the corpus
    shown: torch.Tensor  # long (B,) the rejected video's rows
    seen: list[list[int]]  # per turn, the rows judged at earlier turns (not shown again)


def train_refiner(config: RefinerTrainConfig) -> Path:
    """Train the SQR head of `checkpoint` on the not-matched examples; write the whole checkpoint to `out`."""
    if not (config.checkpoint and config.data and config.index and config.out):
        raise ConfigError("the refiner stage needs `checkpoint` (an SFT policy), `data`, `index` and `out`")
    out = Path(config.out)
    check_replaceable(out, LOG_FILE, "refiner stage")
    engine = SearchEngine.load(config.index)
    embedder = engine.embedder
    row_of = {v: i for i, v in enumerate(engine.video_ids)}
    examples = [e for e in read_sft_examples(config.data)
                if e.mode == "sqr" and not e.matched and {e.gt_video_id, e.video_id, *e.seen} <= row_of.keys()]
    if not examples:
        raise ConfigError(f"{config.data} holds no not-matched SQR example whose videos are in {config.index}")
    held_batches = int(len(examples) * config.holdout) // config.batch_size  # whole batches: no turn is in both
    torch.manual_seed(config.seed)
    policy = Policy.load(config.checkpoint, embedder, trainable=True).eval()  # the LM's dropout stays off
    policy.requires_grad_(False)
    policy.sqr.requires_grad_(True)
    video_vectors = torch.from_numpy(engine.store.get_vectors(engine.video_ids))
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    if isinstance(policy.lm, PeftModel):  # frozen here: merged, the LoRA's extra products leave every forward
        policy.lm.merge_adapter()
    size = config.batch_size
    lengths = policy.sft_lengths([e.query for e in examples], [videos[e.video_id] for e in examples],
                                 [e.target for e in examples], [e.mode for e in examples])
    examples = [examples[i] for i in np.argsort(lengths, kind="stable")]  # batches of like lengths pad less
    chunks = [examples[i:i + size] for i in range(0, len(examples), size)]
    chunks = [chunks[i] for i in np.random.default_rng(config.seed).permutation(len(chunks))]  # held-out: random
    batches = [prefill_turns(policy, embedder, chunk, videos, row_of) for chunk in track(chunks, "prefilling turns")]
    held, fit = batches[:held_batches], batches[held_batches:]
    n_held = sum(len(b.queries) for b in held)
    first_query = sum(_first_among_unseen(b.original, video_vectors, b) for b in held)  # q's, the same every epoch

    contrast = SFTConfig(tau=config.tau, negatives=config.negatives, ambiguity_margin=config.ambiguity_margin)

    def refine(batch: Prefilled, generator: torch.Generator, centre_momentum: float = 0.0) -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
        """InfoNCE of q' on one batch, and q' itself."""
        read: list[torch.Tensor] = []
        latents = roll_out(policy, batch, read)
        if centre_momentum:
            policy.sqr.refine_hidden_centre.track(torch.stack(read, 1), centre_momentum)
        refined = policy.sqr.refined_query(
            batch.original, embedder.embed_text_with_latents(batch.queries, policy.sqr.to_embedder(latents)))
        loss = info_nce(refined, batch.original, video_vectors, batch.positives, batch.shown, contrast, generator)
        return loss, refined

    def score(epoch: int) -> dict:
        """Held-out InfoNCE (the same negatives' seeds every epoch) and how often the ground truth comes first
        among the videos not shown, under q and under q'."""
        losses, first_refined = [], 0
        with torch.no_grad():
            for k, batch in enumerate(held):
                loss, refined = refine(batch, torch.Generator().manual_seed(config.seed + 1000 + k))
                losses.append(loss.item() * len(batch.queries))
                first_refined += _first_among_unseen(refined, video_vectors, batch)
        return {"epoch": epoch, "heldout_turns": n_held, "heldout_infonce": round(sum(losses) / n_held, 4),
                "heldout_first_query": round(100 * first_query / n_held, 1),
                "heldout_first_refined": round(100 * first_refined / n_held, 1),
                "gate": round(policy.sqr.refine_gate.weight.item(), 4)}

    gate = [policy.sqr.refine_gate.weight]
    head = [p for name, p in policy.sqr.named_parameters() if not name.startswith("refine_gate")]
    optimizer = torch.optim.AdamW([{"params": head, "lr": config.lr}, {"params": gate, "lr": config.gate_lr}],
                                  weight_decay=0.0)
    total = len(fit) * config.epochs
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    generator = torch.Generator().manual_seed(config.seed)
    records: list[dict] = []
    scores = [score(0)] if held else []  # epoch 0: q' = q (the gate is closed)
    kept, kept_state = (0, copy.deepcopy(policy.sqr.state_dict())) if held else (config.epochs, None)
    with progress() as bar:
        task = bar.add_task("SQR head", total=total)
        for epoch in range(1, config.epochs + 1):
            for k in np.random.default_rng(config.seed + epoch).permutation(len(fit)):
                began = time.perf_counter()
                # the first batch sets the centre of what the head reads; later ones follow the latents' drift
                loss, _ = refine(fit[k], generator, 1.0 if not records else config.centre_momentum)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.sqr.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                records.append({"step": len(records) + 1, "epoch": epoch, "infonce": round(loss.item(), 4),
                                "gate": round(policy.sqr.refine_gate.weight.item(), 4),
                                "seconds": round(time.perf_counter() - began, 3)})
                bar.update(task, advance=1, description=f"SQR head epoch {epoch} infonce {loss.item():.3f} gate "
                                                        f"{records[-1]['gate']:.3f}")
            if held:
                scores.append(score(epoch))
                logger.info("SQR head epoch %d: %s", epoch, scores[-1])
                if scores[-1]["heldout_infonce"] < scores[kept]["heldout_infonce"]:
                    kept, kept_state = epoch, copy.deepcopy(policy.sqr.state_dict())
    if kept_state is not None:
        policy.sqr.load_state_dict(kept_state)
    if isinstance(policy.lm, PeftModel):
        policy.lm.unmerge_adapter()

    def write(folder: Path) -> None:
        policy.save(folder)
        calibration = Path(config.checkpoint) / REPORT_FILE  # type: ignore[arg-type]
        if calibration.is_file():  # the verdict's threshold is in policy.json; its report travels with it
            (folder / REPORT_FILE).write_bytes(calibration.read_bytes())
        save_config(config, folder / "refiner_config.yaml")
        lines = records + [dict(row, kept=row["epoch"] == kept) for row in scores]
        write_text_atomic(folder / LOG_FILE, "".join(json.dumps(r) + "\n" for r in lines))

    publish_folder(out, write)
    logger.info("SQR head: %d fit and %d held-out turns, kept epoch %d of %d: %s", len(examples) - n_held, n_held,
                kept, config.epochs, scores[kept] if held else records[-1])
    return out


def prefill_turns(policy: Policy, embedder: Embedder, turns: list[SFTExample], videos: VideoCache,
                  row_of: dict[str, int]) -> Prefilled:
    """Run the frozen policy over the turns' prompts and targets once; keep the cache in fp16. `row_of`: the
    corpus row of each video id."""
    queries = [e.query for e in turns]
    with torch.no_grad():
        state = policy.sft_forward(queries, [videos[e.video_id] for e in turns], [e.target for e in turns],
                                   [e.mode for e in turns])
    kv = [(layer.keys.half(), layer.values.half()) for layer in state.cache.layers]
    _load_cache(state.cache, kv)  # the fp32 prefill is freed
    return Prefilled(queries, state.cache, kv, state.refine_hidden, state.attention_mask,
                     torch.from_numpy(embedder.embed_text(queries)),
                     torch.tensor([row_of[e.gt_video_id] for e in turns]),
                     torch.tensor([row_of[e.video_id] for e in turns]),
                     [[row_of[v] for v in e.seen] for e in turns])


def roll_out(policy: Policy, batch: Prefilled, read: list[torch.Tensor] | None = None) -> torch.Tensor:
    """The SQR latents (B, N, D) on a prefilled batch; its cache is left as it was, so every epoch starts alike."""
    _load_cache(batch.cache, batch.kv, torch.float32)  # the rollout appends to fp32 copies
    try:
        return rollout_latents(policy.vision.step_fn(policy.lm, batch.cache), policy.sqr, batch.refine_hidden,
                               batch.attention_mask, policy.config.n_latents, read)
    finally:
        _load_cache(batch.cache, batch.kv)


def _load_cache(cache: object, kv: list[tuple[torch.Tensor, torch.Tensor]], dtype: torch.dtype | None = None) -> None:
    """Make each layer of `cache` hold these (keys, values), as copies in `dtype` when one is given."""
    for layer, (keys, values) in zip(cache.layers, kv):  # type: ignore[attr-defined]
        layer.keys, layer.values = (keys, values) if dtype is None else (keys.to(dtype), values.to(dtype))


def _first_among_unseen(vectors: torch.Tensor, video_vectors: torch.Tensor, batch: Prefilled) -> int:
    """How many rows of `vectors` (B, D) rank their ground truth first among the videos not judged yet."""
    scores = vectors @ video_vectors.T
    scores[torch.arange(len(scores)), batch.shown] = float("-inf")
    for row, seen in enumerate(batch.seen):
        scores[row, seen] = float("-inf")
    return int((scores.argmax(1) == batch.positives).sum())
