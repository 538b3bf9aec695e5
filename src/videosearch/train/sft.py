"""Stage 1: supervised fine-tuning of the policy, cross-entropy on the assistant text + InfoNCE on q'.

    config = load_config(SFTConfig, "configs/mini.yaml", "sft")
    train_sft(config)          # resumes from `<out>/last` when it exists

For each example whose target ends with `<REFINE>`, the latents rolled out on the teacher-forced cache are
inserted into the query; q' = embed_text_with_latents(query, latents) must rank the ground-truth video above
the shown wrong video, hard negatives re-mined with the current q', and random fill (DESIGN.md section 1).
Gradients flow through the frozen embedder into the latents, the SQR head and the LM.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import get_cosine_schedule_with_warmup

from videosearch.agent.videos import VideoCache
from videosearch.config import save_config
from videosearch.embed.base import Embedder
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.policy.policy import Policy, PolicyConfig
from videosearch.policy.rollout import rollout_latents
from videosearch.progress import progress, track
from videosearch.train.sft_data import SFTExample, read_sft_examples

logger = logging.getLogger(__name__)
LAST = "last"
FINAL = "final"
STATE_FILE = "trainer_state.pt"


@dataclass
class SFTConfig:
    """Stage-1 training of the policy; `data` from `videosearch train sft-data`, `index` over the training videos."""

    data: str | None = None
    index: str | None = None
    out: str | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    epochs: int = 1
    batch_size: int = 8
    lr: float = 2e-4  # LoRA
    heads_lr: float = 1e-3  # SQR head, vision projector and the new token rows
    weight_decay: float = 0.0
    warmup_steps: int = 20
    infonce_weight: float = 0.3
    tau: float = 0.1
    negatives: int = 24
    ambiguity_margin: float = 0.0005  # negatives this close to the positive under the original query are dropped
    max_examples: int = 0  # 0 = all
    save_every: int = 50  # steps between checkpoints of `<out>/last`
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.epochs < 1 or self.negatives < 1 or self.tau <= 0:
            raise ConfigError("batch_size, epochs and negatives must be >= 1 and tau > 0")


def info_nce(refined: torch.Tensor, original: torch.Tensor, video_vectors: torch.Tensor, positives: torch.Tensor,
             shown: torch.Tensor, config: SFTConfig, generator: torch.Generator) -> torch.Tensor:
    """InfoNCE of q' against the positive and `config.negatives` negatives per row.

    Args:
        refined: (R, D) q', with gradients.  original: (R, D) q.  video_vectors: (V, D) the corpus.
        positives: long (R,) ground-truth rows of `video_vectors`.  shown: long (R,) the video each row was
            shown (a negative unless it is the positive).
    """
    with torch.no_grad():
        refined_scores = refined.detach() @ video_vectors.T  # (R, V): hard negatives, re-mined with the current q'
        original_scores = original @ video_vectors.T
        negatives = torch.empty(len(refined), config.negatives, dtype=torch.long)
        for row in range(len(refined)):
            ranked = refined_scores[row].argsort(descending=True)
            fill = torch.randperm(len(video_vectors), generator=generator)
            order = torch.cat([shown[row:row + 1], ranked, fill])
            order = order[order != positives[row]]
            _, first = np.unique(order.numpy(), return_index=True)  # keep the first occurrence, in order
            negatives[row] = order[np.sort(first)][: config.negatives]
        ambiguous = original_scores.gather(1, negatives) >= (
            original_scores.gather(1, positives[:, None]) - config.ambiguity_margin)
    candidates = torch.cat([positives[:, None], negatives], dim=1)  # (R, 1 + K), the positive first
    logits = (refined[:, None, :] * video_vectors[candidates]).sum(-1) / config.tau
    logits = logits.masked_fill(torch.cat([torch.zeros_like(ambiguous[:, :1]), ambiguous], dim=1), float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(refined), dtype=torch.long))


def _optimizer(policy: Policy, config: SFTConfig) -> torch.optim.Optimizer:
    """LoRA at `lr`; the SQR head, the vision projector and the new token rows at `heads_lr`."""
    heads = [p for n, p in policy.named_parameters() if p.requires_grad and "lora_" not in n]
    lora = [p for n, p in policy.named_parameters() if p.requires_grad and "lora_" in n]
    return torch.optim.AdamW([{"params": lora, "lr": config.lr}, {"params": heads, "lr": config.heads_lr}],
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
    """Train, checkpointing `<out>/last` every `save_every` steps and `<out>/final` at the end; returns the latter."""
    examples, engine = _load_inputs(config)
    out = Path(config.out)  # type: ignore[arg-type]
    torch.manual_seed(config.seed)
    embedder = engine.embedder
    resume = out / LAST / STATE_FILE
    policy = (Policy.load(out / LAST, embedder, trainable=True) if resume.exists()
              else Policy.create(config.policy, embedder).train())
    for module in (getattr(embedder, "text", None), getattr(embedder, "video", None)):
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)
    optimizer = _optimizer(policy, config)
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, total)
    step = 0
    if resume.exists():
        state = torch.load(resume, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
        logger.info("resuming from %s at step %d of %d", out / LAST, step, total)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")

    ids = engine.video_ids
    row_of = {v: i for i, v in enumerate(ids)}
    video_vectors = torch.from_numpy(engine.store.get_vectors(ids))
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    for video_id in track(sorted({e.video_id for e in examples}), "decoding videos"):
        videos[video_id]
    generator = torch.Generator().manual_seed(config.seed)
    log = (out / "log.jsonl").open("a")
    with progress() as bar:
        task = bar.add_task("SFT", total=total, completed=step)
        while step < total:
            epoch, offset = divmod(step, steps_per_epoch)
            order = np.random.default_rng(config.seed + epoch).permutation(len(examples))
            batch = [examples[i] for i in order[offset * config.batch_size:(offset + 1) * config.batch_size]]
            started = time.perf_counter()
            ce, nce = _step(policy, embedder, batch, videos, video_vectors, row_of, config, generator)
            loss = ce + config.infonce_weight * nce
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in policy.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            record = {"step": step, "epoch": epoch, "ce": round(float(ce), 4), "infonce": round(float(nce), 4),
                      "lr": scheduler.get_last_lr()[0], "seconds": round(time.perf_counter() - started, 3)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.update(task, advance=1, description=f"SFT ce {record['ce']:.3f} infonce {record['infonce']:.3f}")
            if step % config.save_every == 0 or step == total:
                _save(policy, optimizer, scheduler, step, out / LAST)
    log.close()
    policy.save(out / FINAL)
    return out / FINAL


def _step(policy: Policy, embedder: Embedder, batch: list[SFTExample], videos: VideoCache,
          video_vectors: torch.Tensor, row_of: dict[str, int], config: SFTConfig,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(CE, InfoNCE) of one batch; InfoNCE is 0 when no row rolls out latents against a known positive."""
    queries = [e.query for e in batch]
    out = policy.sft_forward(queries, [videos[e.video_id] for e in batch], [e.target for e in batch],
                             [e.mode for e in batch])
    rows = [i for i in out.refine_rows.nonzero().flatten().tolist() if batch[i].gt_video_id in row_of]
    if not rows:
        return out.ce_loss, torch.zeros(())
    latents = rollout_latents(policy.vision.step_fn(policy.lm, out.cache), policy.sqr, out.refine_hidden,
                              out.attention_mask, policy.config.n_latents)[rows]
    chosen = [queries[i] for i in rows]
    refined = embedder.embed_text_with_latents(chosen, policy.sqr.to_embedder(latents))
    original = torch.from_numpy(embedder.embed_text(chosen))
    positives = torch.tensor([row_of[batch[i].gt_video_id] for i in rows])
    shown = torch.tensor([row_of[batch[i].video_id] for i in rows])
    return out.ce_loss, info_nce(refined, original, video_vectors, positives, shown, config, generator)


def _save(policy: Policy, optimizer: torch.optim.Optimizer, scheduler: object, step: int, folder: Path) -> None:
    """Atomically replace `folder` with the trained weights and the optimizer state needed to resume."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save(tmp)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),  # type: ignore[attr-defined]
                "step": step}, tmp / STATE_FILE)
    old = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
