"""Stage 1: supervised fine-tuning of the policy, cross-entropy on the assistant text + InfoNCE on q'.

    config = load_config(SFTConfig, "configs/mini.yaml", "sft")
    train_sft(config)          # resumes from `<out>/last` when it exists, exactly (same weights)

For each not-matched example whose target ends with `<REFINE>`, the latents rolled out on the teacher-forced cache
are inserted into the query; q' (`SQRHead.refined_query`) must rank the ground-truth video above the shown wrong
video, hard negatives re-mined with the current q', and random fill (DESIGN.md section 1). Matched rows do not train
the refiner: at inference it runs only after a rejection, and there the latents would learn to describe the video
that was shown. Gradients flow through the frozen embedder into the latents, the SQR head and the LM.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from transformers import get_cosine_schedule_with_warmup
from transformers.trainer_pt_utils import get_length_grouped_indices

from videosearch.agent.videos import VideoCache
from videosearch.config import save_config
from videosearch.embed.base import Embedder
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.folders import check_replaceable
from videosearch.policy.policy import Policy, PolicyConfig
from videosearch.policy.rollout import rollout_latents
from videosearch.progress import progress, track
from videosearch.train.checkpoints import (
    FINAL,
    LAST,
    STATE_FILE,
    load_state,
    recover_checkpoint,
    rng_state,
    save_checkpoint,
    truncate_log,
)
from videosearch.train.processes import check_same_weights, sum_gradients
from videosearch.train.sft_data import SFTExample, read_sft_examples

logger = logging.getLogger(__name__)
LOG_FILE = "log.jsonl"  # also the mark of an SFT run's folder: `out` is only ever replaced when it holds one


@dataclass
class SFTConfig:
    """Stage-1 training of the policy; `data` from `videosearch train sft-data`, `index` over the training videos."""

    data: str | None = None
    index: str | None = None
    out: str | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    epochs: int = 1
    batch_size: int = 8
    lr: float = 2e-4  # LoRA, or the whole LM when policy.lora_r is 0
    heads_lr: float = 1e-3  # SQR head, vision projector and the new token rows
    weight_decay: float = 0.0
    warmup_steps: int = 20
    infonce_weight: float = 0.3
    verdict_weight: float = 5.0  # CE weight of the verdict token against 1 for every other target token
    tau: float = 0.1
    negatives: int = 24
    ambiguity_margin: float = 0.0005  # negatives within this of the positive under the original query are dropped
    max_examples: int = 0  # 0 = all
    save_every: int = 50  # steps between checkpoints of `<out>/last`
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.epochs < 1 or self.negatives < 1 or self.tau <= 0:
            raise ConfigError("batch_size, epochs and negatives must be >= 1 and tau > 0")


def info_nce(refined: torch.Tensor, original: torch.Tensor, video_vectors: torch.Tensor, positives: torch.Tensor,
             shown: torch.Tensor, config: SFTConfig, generator: torch.Generator,
             reduction: str = "mean") -> torch.Tensor:
    """InfoNCE of q' against the positive and `config.negatives` negatives per row.

    A negative scoring within `ambiguity_margin` of the positive under the original query, on either side, is
    taken for a likely duplicate of it and dropped. The reference drops every negative scoring above the positive
    minus the margin: all the hard ones, the shown wrong video in every not-matched row (DESIGN.md section 1).

    Args:
        refined: (R, D) q', with gradients.  original: (R, D) q.  video_vectors: (V, D) the corpus.
        positives: long (R,) ground-truth rows of `video_vectors`.  shown: long (R,) the video each row was
            shown (a negative unless it is the positive).
    """
    positives, shown = positives.cpu(), shown.cpu()
    with torch.no_grad():  # the negatives are chosen on the CPU, wherever the vectors live
        refined_scores = (refined.detach() @ video_vectors.T).cpu()  # (R, V): hard negatives, re-mined with q'
        original_scores = (original @ video_vectors.T).cpu()
        negatives = torch.empty(len(refined), config.negatives, dtype=torch.long)
        for row in range(len(refined)):
            ranked = refined_scores[row].argsort(descending=True)
            fill = torch.randperm(len(video_vectors), generator=generator)
            order = torch.cat([shown[row:row + 1], ranked, fill])
            order = order[order != positives[row]]
            _, first = np.unique(order.numpy(), return_index=True)  # keep the first occurrence, in order
            negatives[row] = order[np.sort(first)][: config.negatives]
        ambiguous = (original_scores.gather(1, negatives) - original_scores.gather(1, positives[:, None])).abs() <= (
            config.ambiguity_margin)
    candidates = torch.cat([positives[:, None], negatives], dim=1).to(video_vectors.device)  # the positive first
    logits = (refined[:, None, :] * video_vectors[candidates]).sum(-1) / config.tau
    masked = torch.cat([torch.zeros_like(ambiguous[:, :1]), ambiguous], dim=1).to(logits.device)
    logits = logits.masked_fill(masked, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(refined), dtype=torch.long,
                                                                 device=logits.device), reduction=reduction)


def _optimizer(policy: Policy, config: SFTConfig) -> torch.optim.Optimizer:
    """LoRA (or, trained in full, the whole LM) at `lr`; the SQR head, the vision projector and, with LoRA, the new
    token rows at `heads_lr`."""
    full = policy.config.lora_r == 0

    def in_lm(name: str) -> bool:
        return "lora_" in name or (full and name.startswith("lm."))

    lm = [p for n, p in policy.named_parameters() if p.requires_grad and in_lm(n)]
    heads = [p for n, p in policy.named_parameters() if p.requires_grad and not in_lm(n)]
    return torch.optim.AdamW([{"params": lm, "lr": config.lr}, {"params": heads, "lr": config.heads_lr}],
                             weight_decay=config.weight_decay)


def _load_inputs(config: SFTConfig) -> tuple[list[SFTExample], SearchEngine]:
    if not config.data or not config.index or not config.out:
        raise ConfigError("SFT needs `data` (videosearch train sft-data), `index` (over the training videos) and "
                          "`out`")
    examples = read_sft_examples(config.data)
    if config.max_examples:
        examples = examples[: config.max_examples]
    if not examples:
        raise ConfigError(f"{config.data} holds no examples")
    engine = SearchEngine.load(config.index)
    missing = sorted({e.video_id for e in examples} - set(engine.video_ids))
    if missing:
        raise ConfigError(f"{len(missing)} shown videos (e.g. {missing[0]!r}) are not in the index {config.index}; "
                          "build it over the videos the examples were made from")
    return examples, engine


def train_sft(config: SFTConfig) -> Path:
    """Train, checkpointing `<out>/last` every `save_every` steps and `<out>/final` at the end; returns the latter.

    A run killed at any point and started again resumes from its newest complete checkpoint with the log cut
    back to that step and every random state restored, so it ends with the weights of a run never killed.
    Under `accelerate launch` (or torchrun) each of N processes takes every N-th example of each batch; the losses
    are normalised by the batch's totals over all processes and the gradients summed, so N processes take the
    steps one process takes (up to the random fill of InfoNCE's negatives, which each process draws on its own).
    """
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    examples, engine = _load_inputs(config)
    out = Path(config.out)  # type: ignore[arg-type]
    if main:
        check_replaceable(out, LOG_FILE, "SFT run")
    torch.manual_seed(config.seed)  # the same initial weights in every process
    embedder = engine.embedder
    checkpoint = recover_checkpoint(out) if main else None
    accelerator.wait_for_everyone()
    if not main and (out / LAST / STATE_FILE).is_file():
        checkpoint = out / LAST
    policy = (Policy.load(checkpoint, embedder, trainable=True) if checkpoint
              else Policy.create(config.policy, embedder).train()).to(accelerator.device)
    for module in (getattr(embedder, "text", None), getattr(embedder, "video", None)):
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False).to(accelerator.device)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = _optimizer(policy, config)
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, total)
    generator = torch.Generator().manual_seed(config.seed + rank)
    step = load_state(checkpoint / STATE_FILE, optimizer, scheduler, generator) if checkpoint else 0
    if rank:  # dropout differs between processes, as their examples do
        torch.manual_seed(config.seed + rank)
    if checkpoint:
        logger.info("resuming from %s at step %d of %d", checkpoint, step, total)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        truncate_log(out / LOG_FILE, step)  # first, so that the folder is marked as ours before anything else
        save_config(config, out / "config.yaml")

    ids = engine.video_ids
    row_of = {v: i for i, v in enumerate(ids)}
    video_vectors = torch.from_numpy(engine.store.get_vectors(ids)).to(accelerator.device)
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    for video_id in track(sorted({e.video_id for e in examples}), "decoding videos"):
        videos[video_id]
    lengths = policy.sft_lengths([e.query for e in examples], [videos[e.video_id] for e in examples],
                                 [e.target for e in examples], [e.mode for e in examples])
    plan: dict[int, list[list[int]]] = {}
    log = (out / LOG_FILE).open("a", encoding="utf-8") if main else None
    with progress() as bar:
        task = bar.add_task("SFT", total=total, completed=step, visible=main)
        while step < total:
            epoch, offset = divmod(step, steps_per_epoch)
            if epoch not in plan:  # once an epoch, not every step
                plan = {epoch: _epoch_batches(lengths, config.batch_size, config.seed + epoch)}
            batch = [examples[i] for i in plan[epoch][offset][rank::world]]
            started = time.perf_counter()
            sums = _step(policy, embedder, batch, videos, video_vectors, row_of, config, generator)
            totals = torch.stack([sums.ce_weight, sums.nce_rows]).to(accelerator.device)
            if world > 1:
                totals = accelerator.reduce(totals, "sum")
            ce = sums.ce_sum / totals[0].clamp(min=1e-8)
            nce = sums.nce_sum / totals[1].clamp(min=1.0)
            optimizer.zero_grad()
            if batch:
                (ce + config.infonce_weight * nce).backward()
            if world > 1:
                sum_gradients(trainable, accelerator)
                ce, nce = accelerator.reduce(ce.detach(), "sum"), accelerator.reduce(nce.detach(), "sum")
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            record = {"step": step, "epoch": epoch, "ce": round(float(ce.detach()), 4),
                      "infonce": round(float(nce.detach()), 4), "lr": scheduler.get_last_lr()[0],
                      "seconds": round(time.perf_counter() - started, 3)}
            if log is not None:
                log.write(json.dumps(record) + "\n")
                log.flush()
            bar.update(task, advance=1, description=f"SFT ce {record['ce']:.3f} infonce {record['infonce']:.3f}")
            if main and (step % config.save_every == 0 or step == total):
                state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                         "step": step, "rng": rng_state(generator)}
                save_checkpoint(policy, out / LAST, state)
    if world > 1:  # the summed gradients keep every process's weights the same: check it before saving them
        check_same_weights(trainable, accelerator)
    if log is not None:
        log.close()
        save_checkpoint(policy, out / FINAL)
    accelerator.wait_for_everyone()
    return out / FINAL


def _epoch_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """One epoch's batches of example indices: each of like lengths (grouped within random mega-batches, so
    padding stays small), in random order (so that no run of steps sees only long or only short examples)."""
    order = get_length_grouped_indices(lengths, batch_size, generator=torch.Generator().manual_seed(seed))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in np.random.default_rng(seed).permutation(len(batches))]


@dataclass
class _StepSums:
    """One process's share of a batch: the sums its losses are made of, and what they are normalised by."""

    ce_sum: torch.Tensor
    ce_weight: torch.Tensor
    nce_sum: torch.Tensor
    nce_rows: torch.Tensor


def _step(policy: Policy, embedder: Embedder, batch: list[SFTExample], videos: VideoCache,
          video_vectors: torch.Tensor, row_of: dict[str, int], config: SFTConfig,
          generator: torch.Generator) -> _StepSums:
    """The CE and InfoNCE sums of this process's examples; InfoNCE is 0 (and no latents are rolled out) when its
    weight is 0 or no row refines against a known positive."""
    zero = torch.zeros((), device=video_vectors.device)
    if not batch:
        return _StepSums(zero, zero, zero, zero)
    queries = [e.query for e in batch]
    out = policy.sft_forward(queries, [videos[e.video_id] for e in batch], [e.target for e in batch],
                             [e.mode for e in batch], config.verdict_weight)
    rows = [i for i in out.refine_rows.nonzero().flatten().tolist()
            if not batch[i].matched and batch[i].gt_video_id in row_of]
    if not rows or config.infonce_weight == 0:
        return _StepSums(out.ce_sum, out.ce_weight.detach(), zero, zero)
    latents = rollout_latents(policy.vision.step_fn(policy.lm, out.cache), policy.sqr, out.refine_hidden,
                              out.attention_mask, policy.config.n_latents)[rows]
    chosen = [queries[i] for i in rows]
    original = torch.from_numpy(embedder.embed_text(chosen)).to(video_vectors.device)
    with_latents = embedder.embed_text_with_latents(chosen, policy.sqr.to_embedder(latents)).to(original.device)
    refined = policy.sqr.refined_query(original, with_latents)
    positives = torch.tensor([row_of[batch[i].gt_video_id] for i in rows])
    shown = torch.tensor([row_of[batch[i].video_id] for i in rows])
    nce_sum = info_nce(refined, original, video_vectors, positives, shown, config, generator, reduction="sum")
    return _StepSums(out.ce_sum, out.ce_weight.detach(), nce_sum, torch.tensor(float(len(rows)), device=zero.device))
