"""A stage that trains only the SQR head, with many more InfoNCE steps than SFT can afford on a CPU.

    config = load_config(RefinerTrainConfig, "configs/mini.yaml", "refiner")
    train_refiner(config)        # <out>: the checkpoint with the refined head, calibration kept

The policy's LM, LoRA and vision stay as SFT left them: each batch's prompt and target are run without gradient
(one prefill, no backward through it), then the latent rollout on that cache, the embedder and InfoNCE are
differentiated down to the SQR head. Only not-matched SQR examples with a known ground truth are used: at inference
the refiner runs after a rejection. The gate of the refined query (`refine_gate`) learns at its own rate. The
first batch sets the centre the head subtracts from each hidden state it reads (`refine_hidden_centre`); later
batches move it with `centre_momentum`, since the hidden states of the latent steps follow the head as it learns.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from videosearch.agent.videos import VideoCache
from videosearch.atomic import write_text_atomic
from videosearch.config import save_config
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.folders import check_replaceable, publish_folder
from videosearch.policy.policy import Policy
from videosearch.policy.rollout import rollout_latents
from videosearch.progress import progress, track
from videosearch.train.calibrate import REPORT_FILE
from videosearch.train.sft import SFTConfig, info_nce
from videosearch.train.sft_data import read_sft_examples

logger = logging.getLogger(__name__)
LOG_FILE = "refiner_log.jsonl"  # also the mark of this stage's output folder


@dataclass
class RefinerTrainConfig:
    """The SQR-head stage: `checkpoint` (an SFT policy), `data` and `index` as for SFT, `out` a new checkpoint."""

    checkpoint: str | None = None
    data: str | None = None
    index: str | None = None
    out: str | None = None
    epochs: int = 2
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


def train_refiner(config: RefinerTrainConfig) -> Path:
    """Train the SQR head of `checkpoint` on the not-matched examples; write the whole checkpoint to `out`."""
    if not (config.checkpoint and config.data and config.index and config.out):
        raise ConfigError("the refiner stage needs `checkpoint` (an SFT policy), `data`, `index` and `out`")
    out = Path(config.out)
    check_replaceable(out, LOG_FILE, "refiner stage")
    engine = SearchEngine.load(config.index)
    embedder = engine.embedder
    ids = engine.video_ids
    row_of = {v: i for i, v in enumerate(ids)}
    examples = [e for e in read_sft_examples(config.data)
                if e.mode == "sqr" and not e.matched and e.gt_video_id in row_of and e.video_id in row_of]
    if not examples:
        raise ConfigError(f"{config.data} holds no not-matched SQR example whose videos are in {config.index}")
    torch.manual_seed(config.seed)
    policy = Policy.load(config.checkpoint, embedder, trainable=True).eval()  # the LM's dropout stays off
    policy.requires_grad_(False)
    policy.sqr.requires_grad_(True)
    gate = [policy.sqr.refine_gate.weight]
    head = [p for name, p in policy.sqr.named_parameters() if not name.startswith("refine_gate")]
    optimizer = torch.optim.AdamW([{"params": head, "lr": config.lr}, {"params": gate, "lr": config.gate_lr}],
                                  weight_decay=0.0)
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    contrast = SFTConfig(tau=config.tau, negatives=config.negatives, ambiguity_margin=config.ambiguity_margin)
    generator = torch.Generator().manual_seed(config.seed)
    video_vectors = torch.from_numpy(engine.store.get_vectors(ids))
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    for video_id in track(sorted({e.video_id for e in examples}), "decoding videos"):
        videos[video_id]
    records = []
    with progress() as bar:
        task = bar.add_task("SQR head", total=total)
        for step in range(total):
            epoch, offset = divmod(step, steps_per_epoch)
            order = np.random.default_rng(config.seed + epoch).permutation(len(examples))
            batch = [examples[i] for i in order[offset * config.batch_size:(offset + 1) * config.batch_size]]
            began = time.perf_counter()
            queries = [e.query for e in batch]
            with torch.no_grad():  # the LM is frozen: no backward through the prompt
                state = policy.sft_forward(queries, [videos[e.video_id] for e in batch], [e.target for e in batch],
                                           [e.mode for e in batch])
            read: list[torch.Tensor] = []
            latents = rollout_latents(policy.vision.step_fn(policy.lm, state.cache), policy.sqr, state.refine_hidden,
                                      state.attention_mask, policy.config.n_latents, read)
            # the first batch sets the centre of what the head reads; later ones follow the fed-back latents' drift
            policy.sqr.refine_hidden_centre.track(torch.stack(read, 1), 1.0 if step == 0 else config.centre_momentum)
            original = torch.from_numpy(embedder.embed_text(queries))
            refined = policy.sqr.refined_query(
                original, embedder.embed_text_with_latents(queries, policy.sqr.to_embedder(latents)))
            loss = info_nce(refined, original, video_vectors, torch.tensor([row_of[e.gt_video_id] for e in batch]),
                            torch.tensor([row_of[e.video_id] for e in batch]), contrast, generator)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.sqr.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            records.append({"step": step + 1, "infonce": round(loss.item(), 4),
                            "gate": round(policy.sqr.refine_gate.weight.item(), 4),
                            "seconds": round(time.perf_counter() - began, 3)})
            bar.update(task, advance=1, description=f"SQR head infonce {loss.item():.3f} gate "
                                                    f"{records[-1]['gate']:.3f}")

    def write(folder: Path) -> None:
        policy.save(folder)
        calibration = Path(config.checkpoint) / REPORT_FILE  # type: ignore[arg-type]
        if calibration.is_file():  # the verdict's threshold is in policy.json; its report travels with it
            (folder / REPORT_FILE).write_bytes(calibration.read_bytes())
        save_config(config, folder / "refiner_config.yaml")
        write_text_atomic(folder / LOG_FILE, "".join(json.dumps(r) + "\n" for r in records))

    publish_folder(out, write)
    logger.info("SQR head: InfoNCE %.3f over the first 10 steps, %.3f over the last 10; gate %.3f",
                float(np.mean([r["infonce"] for r in records[:10]])),
                float(np.mean([r["infonce"] for r in records[-10:]])), records[-1]["gate"])
    return out
