"""Train the `mini` video tower contrastively into the frozen MiniLM text space.

Run: `videosearch retriever train --world runs/world --out runs/retriever`.
Recipe: decode every train video at 1 fps once; embed every train query once (the text tower is
frozen); then random batches of videos with all their queries, so most in-batch negatives come from
other families: the tower learns scene and actors well, while near-duplicates stay hard for one vector.
Loss = InfoNCE(query, videos in batch) + `segment_weight` x InfoNCE(query, the segments of its own
video, target = the segment overlapping the ground-truth span most). Validation VR R@1/R@10 every
`eval_every` epochs; the model of the last epoch is saved (the one-cycle schedule ends annealed, and the
val split is too small to pick an epoch by).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from videosearch.config import save_config
from videosearch.corpus.annotations import read_moments
from videosearch.corpus.types import Moment, VideoFrames
from videosearch.corpus.video import read_frames
from videosearch.embed.base import segment_spans_s
from videosearch.embed.mini import MiniEmbedder, frames_to_tensor
from videosearch.embed.video_tower import VideoTowerConfig
from videosearch.errors import ConfigError
from videosearch.eval.metrics import temporal_iou
from videosearch.folders import check_replaceable, publish_folder, recover_swap
from videosearch.progress import track
from videosearch.train.processes import check_same_weights, sum_gradients

logger = logging.getLogger(__name__)
LOG_FILE = "train_log.json"  # also the mark of a retriever's output folder: only such a folder is ever replaced


@dataclass
class RetrieverTrainConfig:
    """How to train the mini video tower; `world` (a generated synthetic world folder) is required."""

    world: str = ""
    out: str = "runs/retriever"
    epochs: int = 20
    batch_videos: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.05
    tau: float = 0.05  # softmax temperature of both InfoNCE terms
    segment_weight: float = 0.5
    seed: int = 0
    eval_every: int = 5  # epochs between validation passes (the last epoch is always validated)
    video_tower: VideoTowerConfig = field(default_factory=VideoTowerConfig)

    def __post_init__(self) -> None:
        if not self.world:
            raise ConfigError("world is required: the folder written by `videosearch world generate`")
        if self.epochs < 1 or self.batch_videos < 2 or self.eval_every < 1:
            raise ConfigError("epochs and eval_every must be >= 1, batch_videos >= 2")
        if not 0 < self.tau <= 1:
            raise ConfigError(f"tau must be in (0, 1] (got {self.tau})")


def load_split(world: Path, split: str, embedder: MiniEmbedder) -> tuple[list[Moment], dict[str, VideoFrames]]:
    """The split's moments and every video of the split decoded the way the embedder reads them."""
    moments = read_moments(world / f"{split}.jsonl").moments
    size = (embedder.video_config.frame_size,) * 2
    paths = sorted((world / "videos" / split).glob("*.mp4"))
    videos = {p.stem: read_frames(p, embedder.fps, embedder.max_frames, size)
              for p in track(paths, description=f"decoding {split}")}
    return moments, videos


def info_nce(queries: torch.Tensor, keys: torch.Tensor, targets: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean cross-entropy of `targets` under softmax(queries @ keys.T / tau); queries (B, D), keys (K, D)."""
    return torch.nn.functional.cross_entropy(queries @ keys.T / tau, targets)


def _batches(video_ids: list[str], batch_videos: int, rng: np.random.Generator, processes: int) -> list[list[str]]:
    """Random batches of whole videos (every query of a video goes with it); the last one may be smaller, but
    never below two videos (no negatives) nor one per process."""
    order = [video_ids[i] for i in rng.permutation(len(video_ids))]
    batches = [order[i: i + batch_videos] for i in range(0, len(order), batch_videos)]
    return [b for b in batches if len(b) >= max(2, processes)]


def _padded_segments(tower: torch.nn.Module, frame_vectors: torch.Tensor,
                     mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment vectors of every video in a batch, padded: (B, S_max, D) and a bool mask (B, S_max)."""
    per_video = [tower.segments(frame_vectors[j], int(mask[j].sum()))[0] for j in range(len(frame_vectors))]
    padded = torch.nn.utils.rnn.pad_sequence(per_video, batch_first=True)
    lengths = torch.tensor([len(x) for x in per_video], device=padded.device)
    return padded, torch.arange(padded.shape[1], device=padded.device) < lengths[:, None]


def _best_segment(embedder: MiniEmbedder, video: VideoFrames, moment: Moment) -> int:
    """Index of the segment window overlapping the moment's ground-truth span most."""
    spans = segment_spans_s(video, embedder.video.segment_ranges(len(video)), embedder.fps)
    return int(np.argmax([temporal_iou(span, (moment.start_s, moment.end_s)) for span in spans]))


@torch.no_grad()
def video_recall(embedder: MiniEmbedder, moments: list[Moment], videos: dict[str, VideoFrames],
                 query_vectors: np.ndarray, ks: tuple[int, ...] = (1, 10)) -> dict[str, float]:
    """VR R@k (percent) of the queries against every video of the split."""
    ids = sorted(videos)
    vectors = np.concatenate([np.stack([e.vector for e in embedder.embed_video([videos[v] for v in ids[i: i + 64]])])
                              for i in range(0, len(ids), 64)])
    ranks = np.argsort(-(query_vectors @ vectors.T), axis=1)
    gt = np.array([ids.index(m.video_id) for m in moments])
    return {f"R@{k}": float(100 * np.mean([g in r[:k] for g, r in zip(gt, ranks)])) for k in ks}


def train_retriever(config: RetrieverTrainConfig) -> MiniEmbedder:
    """Train, validate every `eval_every` epochs, save the last epoch to `config.out`; returns the embedder.

    Under `accelerate launch` (or torchrun) each of N processes embeds every N-th video of a batch; the video
    vectors are gathered, so every query still sees the whole batch's negatives, and each process's loss carries
    gradients into its own videos only: summed over processes they are the one-process gradients.
    """
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world, main, device = (accelerator.process_index, accelerator.num_processes,
                                 accelerator.is_main_process, accelerator.device)
    torch.manual_seed(config.seed)  # the same initial weights in every process
    rng = np.random.default_rng(config.seed)  # the same batches in every process
    world_dir, out = Path(config.world), Path(config.out)
    if not (world_dir / "world.json").exists():
        raise ConfigError(f"{world_dir} is not a complete synthetic world: "
                          f"run `videosearch world generate --out {world_dir}`")
    if main:
        recover_swap(out, LOG_FILE)  # a run killed while publishing its output
        check_replaceable(out, LOG_FILE, "retriever training output")  # before the work, not after
    embedder = MiniEmbedder(config.video_tower)
    train_moments, train_videos = load_split(world_dir, "train", embedder)
    val_moments, val_videos = load_split(world_dir, "val", embedder)
    logger.info("embedding %d train and %d val queries with the frozen text tower", len(train_moments),
                len(val_moments))
    train_q = torch.from_numpy(embedder.embed_text([m.query for m in train_moments])).to(device)
    val_q = embedder.embed_text([m.query for m in val_moments])
    by_video: dict[str, list[int]] = {}
    for i, m in enumerate(train_moments):
        by_video.setdefault(m.video_id, []).append(i)
    seg_targets = torch.tensor([_best_segment(embedder, train_videos[m.video_id], m) for m in train_moments],
                               device=device)

    if config.batch_videos < world:
        raise ConfigError(f"batch_videos ({config.batch_videos}) must be at least the number of processes ({world})")
    tower = embedder.video.to(device).train()
    if rank:  # dropout differs between processes, as their videos do
        torch.manual_seed(config.seed + rank)
    parameters = list(tower.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = len(_batches(sorted(train_videos), config.batch_videos, rng, world))
    total = config.epochs * steps_per_epoch
    if total < 2:
        raise ConfigError(f"{len(train_videos)} train videos in batches of {config.batch_videos} make {total} step(s) "
                          f"in all: raise epochs or lower batch_videos")
    # warm up over a tenth of the run, but over at least a step and a half: OneCycleLR's phases need it
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=total,
                                                    pct_start=max(0.1, 1.5 / total))
    history, started = [], time.time()
    for epoch in range(config.epochs):
        tower.train()
        losses = []
        batches = _batches(sorted(train_videos), config.batch_videos, rng, world)
        for batch_ids in track(batches, description=f"epoch {epoch + 1}", visible=main):
            own = batch_ids[rank::world]
            frames, times, mask = (t.to(device) for t in frames_to_tensor([train_videos[v] for v in own],
                                                                            config.video_tower.frame_size))
            frame_vectors, own_vectors = tower(frames, times, mask)
            video_vectors = _batch_vectors(own_vectors, len(batch_ids), accelerator)
            rows = [i for v in batch_ids for i in by_video.get(v, [])]
            column = torch.tensor([batch_ids.index(train_moments[i].video_id) for i in rows], device=device)
            video_loss = info_nce(train_q[rows], video_vectors, column, config.tau)
            own_rows = [i for v in own for i in by_video.get(v, [])]
            own_column = torch.tensor([own.index(train_moments[i].video_id) for i in own_rows], device=device,
                                      dtype=torch.long)
            segments, seg_mask = _padded_segments(tower, frame_vectors, mask)  # (b, S, D), (b, S)
            seg_logits = torch.einsum("rd,rsd->rs", train_q[own_rows], segments[own_column]) / config.tau
            seg_logits = seg_logits.masked_fill(~seg_mask[own_column], float("-inf"))
            segment_loss = torch.nn.functional.cross_entropy(seg_logits, seg_targets[own_rows],
                                                             reduction="sum") / max(len(rows), 1)
            optimizer.zero_grad()
            (video_loss + config.segment_weight * segment_loss).backward()
            if world > 1:
                sum_gradients(parameters, accelerator)
                segment_loss = accelerator.reduce(segment_loss.detach(), "sum")
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(video_loss + config.segment_weight * segment_loss))
        entry = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": round(time.time() - started, 1)}
        if main and ((epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs):
            tower.eval()
            recall = video_recall(embedder, val_moments, val_videos, val_q)
            entry.update({f"val_{k}": v for k, v in recall.items()})
            logger.info("epoch %d: loss %.3f, val VR R@1 %.1f, R@10 %.1f", epoch + 1, entry["loss"], recall["R@1"],
                        recall["R@10"])
        elif main:
            logger.info("epoch %d: loss %.3f", epoch + 1, entry["loss"])
        history.append(entry)
    tower.eval()
    if world > 1:
        check_same_weights(parameters, accelerator)
    if main:
        _save(embedder, config, history, out)
    accelerator.wait_for_everyone()
    return MiniEmbedder.from_pretrained(out)


def _batch_vectors(own: torch.Tensor, batch_size: int, accelerator: Accelerator) -> torch.Tensor:
    """The video vectors of the whole batch in its order, from every process's share (every N-th video):
    this process's rows keep their gradients, the other processes' rows are constants here."""
    world, rank = accelerator.num_processes, accelerator.process_index
    if world == 1:
        return own
    gathered = accelerator.gather(accelerator.pad_across_processes(own.detach(), dim=0))
    per_process = gathered.shape[0] // world
    rows = [own[p // world] if p % world == rank else gathered[(p % world) * per_process + p // world]
            for p in range(batch_size)]
    return torch.stack(rows)


def _save(embedder: MiniEmbedder, config: RetrieverTrainConfig, history: list[dict], out: Path) -> None:
    """Write the embedder, its log and config beside `out`, then swap them in: `out` is never left half written."""
    def write(folder: Path) -> None:
        embedder.save_pretrained(folder)
        save_config(config, folder / "config.yaml")
        (folder / LOG_FILE).write_text(json.dumps({"config": asdict(config), "history": history}, indent=2))

    check_replaceable(out, LOG_FILE, "retriever training output")  # again: the folder may have changed meanwhile
    publish_folder(out, write)
