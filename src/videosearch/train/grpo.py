"""Stage 2: GRPO from the SFT checkpoint, on episodes that search (DESIGN.md section 1).

    config = load_config(GRPOConfig, "configs/mini.yaml", "grpo")
    train_grpo(config)          # <out>/final; a killed run resumes from <out>/last

Each step takes `prompts_per_step` training queries and samples `group_size` episodes of each: the query's top
video is shown, the policy writes a turn (tokens sampled at `temperature`, the verdict drawn around its calibrated
threshold), a rejection refines the query with SQR latents and, while turns remain (`max_turns`), the refined
ranking's next video is shown. An episode's reward is the weighted sum of `train.rewards`; advantages are
normalised within each query's group. The loss is GRPO's clipped-ratio objective with a KL penalty to the SFT
policy (k3 estimator) over the tokens the policy chose (the grammar's forced tokens are not its actions) and, when
`latent_noise` > 0, over the latents too: each is drawn from a Gaussian around the head's output, its
log-probability enters the objective and GRPO trains the SQR head. A refinement's advantage is its own: its gain
p_gt(q') - p_gt(q) normalised over its group's refinements (the episode's reward is mostly the verdict's, which the
latents cannot change). The latents' term trains the head alone, clipped apart from the LM's tokens: its Gaussian
log-density over N x D dimensions reached LoRA through the rollout with gradients 10^4-10^6 times the tokens'
(measured), so under one clip the tokens' objective all but vanished. `max_turns: 1, latent_noise: 0` is the
reference's setting (one turn, head frozen).

TRL's GRPOTrainer samples text completions and scores them afterwards; here a sample is an episode with latent
rollouts and searches inside it, and latents with log-probabilities of their own: a short loop on torch.
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
from transformers import get_constant_schedule_with_warmup

from videosearch.agent.videos import VideoCache
from videosearch.config import save_config
from videosearch.corpus.annotations import read_moments
from videosearch.corpus.types import Moment
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.eval.plots import plot_training_log
from videosearch.folders import check_replaceable
from videosearch.policy.policy import Completion, Policy
from videosearch.progress import progress
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
from videosearch.train.rewards import REWARDS, RewardWeights, SampledEpisode, SampledTurn

logger = logging.getLogger(__name__)
LOG_FILE = "log.jsonl"  # also the mark of a GRPO run's folder
PLOT_FILE = "rewards.png"


@dataclass
class GRPOConfig:
    """Stage-2 training; `policy` is the (calibrated) SFT checkpoint it starts from and stays near."""

    policy: str | None = None
    index: str | None = None  # over the training videos
    annotations: str | None = None  # the training queries (a world's train.jsonl)
    out: str | None = None
    rewards: RewardWeights = field(default_factory=RewardWeights)
    group_size: int = 8  # episodes sampled per query
    prompts_per_step: int = 2  # queries per optimiser step
    steps: int = 100
    lr: float = 1e-5  # LoRA (or the whole LM when the policy was trained in full)
    heads_lr: float = 1e-4  # the SQR head, trained only when latent_noise > 0
    warmup_steps: int = 5
    kl_weight: float = 0.01
    clip: float = 0.2
    iterations: int = 1  # optimiser passes over each step's episodes (GRPO's mu); the clip bounds the later ones
    temperature: float = 1.0
    # share of queries whose first turn shows the ground truth instead of the search's top video: top videos are
    # mostly wrong, and on them GRPO moves the verdict's prior (to `not_matched`) more than it sharpens it
    truth_first: float = 0.0
    max_turns: int = 1  # 1: the reference's single turn; more: the reward sees the episode after re-searching
    latent_noise: float = 0.0  # std of each latent's Gaussian, as a fraction of its RMS; 0: the SQR head is frozen
    tau: float = 0.1  # refine quality: softmax temperature of p_gt over the ground truth and its negatives
    negatives: int = 24  # refine quality: the original query's top wrong videos
    micro_batch: int = 16  # turns per forward pass of the loss (gradients accumulate)
    save_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("group_size", "prompts_per_step", "steps", "iterations", "max_turns", "negatives",
                     "micro_batch", "save_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"grpo.{name} must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ConfigError("grpo.group_size must be >= 2: advantages are normalised within a group")
        if not self.temperature > 0 or not self.tau > 0 or self.latent_noise < 0 or self.clip <= 0:
            raise ConfigError("grpo.temperature, tau and clip must be > 0 and latent_noise >= 0")
        if not 0 <= self.truth_first <= 1:
            raise ConfigError(f"grpo.truth_first must be in [0, 1], got {self.truth_first}")


@dataclass
class _Turn:
    """What the loss needs of one sampled turn."""

    episode: int  # index into the step's episodes
    query: str
    video: str
    tokens: list[int]  # the completion as the cache held it when the latents were rolled out
    chosen: list[bool]  # which tokens were the policy's choice (the others were forced by the grammar)
    latents: torch.Tensor | None = None  # (N, D) drawn with exploration, when the turn refined
    sigmas: torch.Tensor | None = None  # (N,) their standard deviations
    refine_gain: float = 0.0  # p_gt(q') - p_gt(q), when the turn refined
    latent_advantage: float = 0.0  # the gain normalised over the group's refinements with drawn latents
    # filled by the loss's first pass: the log-probabilities under the weights that sampled the episode (the
    # ratio's denominator in later passes) and under the SFT policy
    old_logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None
    old_latent_logprob: torch.Tensor | None = None


class GaussianLatents:
    """Exploration for `Policy.latents`: each latent z = mu + sigma * eps, sigma = `noise` x RMS(mu) per row."""

    def __init__(self, noise: float, generator: torch.Generator) -> None:
        self.noise, self.generator = noise, generator
        self.means: list[torch.Tensor] = []
        self.drawn: list[torch.Tensor] = []
        self.sigmas: list[torch.Tensor] = []

    def __call__(self, mean: torch.Tensor) -> torch.Tensor:
        self.means.append(mean)
        sigma = self.noise * mean.detach().float().pow(2).mean(-1).sqrt()  # (B,)
        eps = torch.randn(mean.shape, generator=self.generator, device=self.generator.device)
        self.sigmas.append(sigma)
        self.drawn.append(mean + sigma[:, None].to(mean.dtype) * eps.to(mean.device, mean.dtype))
        return self.drawn[-1]


class GivenLatents:
    """Teacher forcing for `Policy.latents`: feeds back the latents drawn when sampling, keeping the means the
    head gives now (with gradients) for their log-probabilities."""

    def __init__(self, latents: torch.Tensor) -> None:
        self.latents, self.means = latents, []

    def __call__(self, mean: torch.Tensor) -> torch.Tensor:
        self.means.append(mean)
        return self.latents[:, len(self.means) - 1].to(mean.device, mean.dtype)


def train_grpo(config: GRPOConfig) -> Path:
    """Train; checkpoints `<out>/last` every `save_every` steps and `<out>/final` at the end (returned), with the
    log (`log.jsonl`: the reward, each term's mean and the KL per step) plotted into `rewards.png`."""
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    if config.prompts_per_step % world:
        raise ConfigError(f"grpo.prompts_per_step ({config.prompts_per_step}) must be a multiple of the number of "
                          f"processes ({world})")
    engine, moments = _load_inputs(config)
    out = Path(config.out)  # type: ignore[arg-type]
    if main:
        check_replaceable(out, LOG_FILE, "GRPO run")
    checkpoint = recover_checkpoint(out) if main else None
    accelerator.wait_for_everyone()
    if not main and (out / LAST / STATE_FILE).is_file():
        checkpoint = out / LAST
    embedder = engine.embedder
    torch.manual_seed(config.seed)
    policy = Policy.load(checkpoint or config.policy, embedder, trainable=True).to(accelerator.device)  # type: ignore[arg-type]
    reference = Policy.load(config.policy, embedder).to(accelerator.device).eval()  # type: ignore[arg-type]
    parameters = _trainable(policy, config)
    lm = [p for n, p in parameters if not n.startswith("sqr.")]
    head = [p for n, p in parameters if n.startswith("sqr.")]
    weights = lm + head
    optimizer = torch.optim.AdamW([{"params": lm, "lr": config.lr}, {"params": head, "lr": config.heads_lr}],
                                  weight_decay=0.0)
    scheduler = get_constant_schedule_with_warmup(optimizer, config.warmup_steps)
    generator = torch.Generator(accelerator.device).manual_seed(config.seed + rank)
    step = load_state(checkpoint / STATE_FILE, optimizer, scheduler, generator) if checkpoint else 0
    if checkpoint:
        logger.info("resuming from %s at step %d of %d", checkpoint, step, config.steps)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        truncate_log(out / LOG_FILE, step)
        save_config(config, out / "config.yaml")

    corpus = _Corpus(engine)
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)
    order = np.random.default_rng(config.seed).permutation(len(moments))
    log = (out / LOG_FILE).open("a", encoding="utf-8") if main else None
    with progress() as bar:
        task = bar.add_task("GRPO", total=config.steps, completed=step, visible=main)
        while step < config.steps:
            began = time.perf_counter()
            first = step * config.prompts_per_step
            chosen = [moments[order[(first + k) % len(moments)]] for k in range(config.prompts_per_step)]
            truth = (np.random.default_rng([config.seed, step]).random(len(chosen)) < config.truth_first).tolist()
            episodes, turns = sample_episodes(policy, engine, corpus, videos, chosen[rank::world], config, generator,
                                              truth[rank::world])
            scored = [config.rewards.score(e) for e in episodes]
            rewards = torch.tensor([r for r, _ in scored])
            advantages = group_advantages(rewards, config.group_size)
            set_latent_advantages(turns, config.group_size)
            stats = {}
            for _ in range(config.iterations):
                optimizer.zero_grad()
                stats = _accumulate_loss(policy, reference, videos, turns, advantages, config, world)
                if world > 1:
                    sum_gradients(weights, accelerator)
                stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(lm, 1.0))
                if head:
                    stats["grad_norm_sqr"] = float(torch.nn.utils.clip_grad_norm_(head, 1.0))
                optimizer.step()
            scheduler.step()
            step += 1
            record = _record(step, scored, stats, len(turns) / len(episodes), time.perf_counter() - began,
                             scheduler.get_last_lr()[0], accelerator)
            if log is not None:
                log.write(json.dumps(record) + "\n")
                log.flush()
            bar.update(task, advance=1, description=f"GRPO reward {record['reward']:.3f} kl {record['kl']:.4f}")
            if main and (step % config.save_every == 0 or step == config.steps):
                state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                         "rng": rng_state(generator)}
                save_checkpoint(policy, out / LAST, state)
    if world > 1:
        check_same_weights(weights, accelerator)
    if log is not None:
        log.close()
        save_checkpoint(policy, out / FINAL)
        plot_training_log(out / LOG_FILE, out / PLOT_FILE, ["reward", *[f"reward_{n}" for n in REWARDS], "kl"])
    accelerator.wait_for_everyone()
    return out / FINAL


def _load_inputs(config: GRPOConfig) -> tuple[SearchEngine, list[Moment]]:
    if not config.policy or not config.index or not config.annotations or not config.out:
        raise ConfigError("GRPO needs `policy` (an SFT checkpoint), `index` (over the training videos), "
                          "`annotations` (the training queries) and `out`")
    engine = SearchEngine.load(config.index)
    moments = [m for m in read_moments(config.annotations).moments if m.video_id in engine.segments]
    if not moments:
        raise ConfigError(f"no query of {config.annotations} has its video in the index {config.index}: build the "
                          "index over the videos the queries were written for")
    return engine, moments


def _trainable(policy: Policy, config: GRPOConfig) -> list[tuple[str, torch.nn.Parameter]]:
    """LoRA (or the whole LM trained in full), and the SQR head when its latents explore; the vision adapter stays
    as SFT left it."""
    full = policy.config.lora_r == 0
    for name, parameter in policy.named_parameters():
        in_lm = "lora_" in name or (full and name.startswith("lm."))
        parameter.requires_grad_(in_lm or (config.latent_noise > 0 and name.startswith("sqr.")))
    return [(n, p) for n, p in policy.named_parameters() if p.requires_grad]


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Each reward minus its group's mean, over the group's standard deviation (a group of equal rewards: 0)."""
    groups = rewards.view(-1, group_size)
    centred = groups - groups.mean(1, keepdim=True)
    return (centred / (groups.std(1, keepdim=True) + 1e-4)).flatten()


def set_latent_advantages(turns: list[_Turn], group_size: int) -> None:
    """Each refinement with drawn latents gets its gain minus the mean over its query's group's refinements, over
    their standard deviation (a refinement alone in its group: 0)."""
    groups: dict[int, list[_Turn]] = {}
    for t in turns:
        if t.latents is not None:
            groups.setdefault(t.episode // group_size, []).append(t)
    for group in groups.values():
        if len(group) < 2:
            continue
        gains = torch.tensor([t.refine_gain for t in group])
        for t, advantage in zip(group, group_advantages(gains, len(group)).tolist()):
            t.latent_advantage = advantage


class _Corpus:
    """The index's video vectors, to score a refined query's p_gt against the original query's top wrong videos."""

    def __init__(self, engine: SearchEngine) -> None:
        ids = engine.video_ids
        self.row = {v: i for i, v in enumerate(ids)}
        self.vectors = torch.from_numpy(np.ascontiguousarray(engine.store.get_vectors(ids), np.float32))

    def p_gt(self, queries: torch.Tensor, original: torch.Tensor, gt: list[str], negatives: int,
             tau: float) -> torch.Tensor:
        """P(ground truth) under softmax(q . v / tau) over it and the `negatives` videos the original query ranks
        highest after it: (B,) for (B, D) queries."""
        gt_rows = torch.tensor([self.row[v] for v in gt])
        ranked = (original @ self.vectors.T).argsort(dim=1, descending=True)
        candidates = torch.stack([torch.cat([g[None], r[r != g][:negatives]]) for g, r in zip(gt_rows, ranked)])
        logits = (queries[:, None, :] * self.vectors[candidates]).sum(-1) / tau
        return torch.softmax(logits, dim=-1)[:, 0]


@torch.no_grad()
def sample_episodes(policy: Policy, engine: SearchEngine, corpus: _Corpus, videos: VideoCache,
                    moments: list[Moment], config: GRPOConfig, generator: torch.Generator,
                    truth_first: list[bool] | None = None) -> tuple[list[SampledEpisode], list[_Turn]]:
    """`group_size` episodes of each moment, all run together turn by turn; episode g of moment m is at
    m * group_size + g; a moment flagged in `truth_first` is shown its ground truth first. With `max_turns` > 1 each
    episode records the video it ends on. Returns the episodes (for the rewards) and their turns (for the loss)."""
    rows = [m for m in moments for _ in range(config.group_size)]
    queries = [m.query for m in rows]
    original = engine.encode_queries(queries)
    vectors = original.copy()
    judged: list[set[str]] = [set() for _ in rows]
    episodes = [SampledEpisode(m, []) for m in rows]
    turns: list[_Turn] = []
    active = list(range(len(rows)))
    for turn_index in range(config.max_turns):
        hits = engine.search_by_vector(vectors[active], 1, [judged[i] for i in active])  # the best not yet shown
        if turn_index == 0 and truth_first:
            hits = [[rows[i].video_id] if truth_first[i // config.group_size] else [h.video_id for h in found]
                    for i, found in zip(active, hits)]
        else:
            hits = [[h.video_id for h in found] for found in hits]
        active = [i for i, h in zip(active, hits) if h]
        shown = [h[0] for h in hits if h]
        if not active:
            break
        turn = policy.generate([queries[i] for i in active], [videos[v] for v in shown], mode="sqr",
                               temperature=config.temperature, generator=generator)
        # a rejection refines, unless the turn ended the episode itself (end of sequence instead of <REFINE>)
        refined = [r for r, p in enumerate(turn.parsed)
                   if p.answer != "matched" and not (turn.token_ids[r] and turn.token_ids[r][-1] in policy.eos_ids)]
        for r, (i, video) in enumerate(zip(active, shown)):
            judged[i].add(video)
            episodes[i].turns.append(SampledTurn(video, turn.parsed[r]))
            turns.append(_Turn(i, queries[i], video, list(turn.token_ids[r]), list(turn.chosen[r])))
        first_turn = len(turns) - len(active)
        if refined:
            explore = GaussianLatents(config.latent_noise, generator) if config.latent_noise > 0 else None
            latents = policy.latents(turn, explore)
            sel = [active[r] for r in refined]
            q = torch.from_numpy(original[sel])
            with_latents = torch.from_numpy(engine.encode_refined([queries[i] for i in sel],
                                                                  policy.sqr.to_embedder(latents[refined]).cpu()))
            new = policy.sqr.refined_query(q, with_latents).float().cpu()
            gt = [rows[i].video_id for i in sel]
            gains = (corpus.p_gt(new, q, gt, config.negatives, config.tau)
                     - corpus.p_gt(q, q, gt, config.negatives, config.tau)).tolist()
            for k, r in enumerate(refined):
                record = turns[first_turn + r]
                if not turn.has_refine[r]:  # the rollout appended the <REFINE> the turn did not write
                    record.tokens.append(policy.refine_id)
                    record.chosen.append(False)
                if explore is not None:
                    record.latents = torch.stack([d[r] for d in explore.drawn]).cpu()
                    record.sigmas = torch.stack([s[r] for s in explore.sigmas]).cpu()
                record.refine_gain = episodes[active[r]].turns[-1].refine_gain = gains[k]
            vectors[sel] = new.numpy()
        active = [active[r] for r in refined]
    if config.max_turns > 1:
        for episode in episodes:
            last = episode.turns[-1]
            episode.final_video = last.video if last.parsed.answer == "matched" else ""
        if active:  # rejected at their last turn: the refined search's first unshown video is the answer
            found = engine.search_by_vector(vectors[active], 1, [judged[i] for i in active])
            for i, hits in zip(active, found):
                episodes[i].final_video = hits[0].video_id if hits else ""
    return episodes, turns


def _accumulate_loss(policy: Policy, reference: Policy, videos: VideoCache, turns: list[_Turn],
                     advantages: torch.Tensor, config: GRPOConfig, world: int) -> dict[str, float]:
    """Backpropagate GRPO's loss over `turns` in micro-batches; returns the mean KL and loss.

    Each episode's objective is the mean over all its chosen tokens (every turn) of the clipped ratio times its
    advantage minus kl_weight x KL, plus the mean over its refinements of the latents' clipped ratio times their own
    advantage (a gradient to the SQR head only); the loss is minus the mean over the step's episodes (over every
    process's)."""
    episodes = len(advantages) * world
    tokens_of = np.zeros(len(advantages))
    refinements_of = np.zeros(len(advantages))
    for t in turns:
        tokens_of[t.episode] += sum(t.chosen)
        refinements_of[t.episode] += t.latents is not None
    head = [p for p in policy.sqr.parameters() if p.requires_grad]
    kl_sum, loss_sum = 0.0, 0.0
    for start in range(0, len(turns), config.micro_batch):
        chunk = turns[start: start + config.micro_batch]
        queries, shown = [t.query for t in chunk], [videos[t.video] for t in chunk]
        tokens = [t.tokens for t in chunk]
        if chunk[0].ref_logprobs is None:
            with torch.no_grad():
                ref = reference.completion_logprobs(queries, shown, tokens, temperature=config.temperature).logprobs
            for row, t in enumerate(chunk):
                t.ref_logprobs = ref[row, : len(t.tokens)].cpu()
        out = policy.completion_logprobs(queries, shown, tokens, temperature=config.temperature)
        logp, mask = out.logprobs, out.mask
        if chunk[0].old_logprobs is None:  # the first pass: these weights sampled the episodes
            for row, t in enumerate(chunk):
                t.old_logprobs = logp[row, : len(t.tokens)].detach().cpu()
        chosen, old, ref = (torch.zeros_like(logp) for _ in range(3))
        for row, t in enumerate(chunk):
            chosen[row, : len(t.chosen)] = torch.tensor(t.chosen, dtype=logp.dtype)
            old[row, : len(t.tokens)] = t.old_logprobs  # type: ignore[assignment]
            ref[row, : len(t.tokens)] = t.ref_logprobs  # type: ignore[assignment]
        chosen = chosen * mask
        advantage = advantages[[t.episode for t in chunk]].to(logp.device)[:, None]
        objective = _clipped(torch.exp(logp - old), advantage, config.clip)
        delta = ref - logp
        kl = torch.exp(delta) - delta - 1
        weight = chosen / torch.tensor([max(tokens_of[t.episode], 1.0) for t in chunk], device=logp.device)[:, None]
        token_loss = -((objective - config.kl_weight * kl) * weight).sum() / episodes
        latent_loss = _latent_loss(policy, out, chunk, refinements_of, config) / episodes
        if latent_loss.requires_grad:  # the latents' log-probability trains the SQR head alone
            latent_loss.backward(inputs=head, retain_graph=True)
        token_loss.backward()
        kl_sum += float((kl.detach() * weight).sum())
        loss_sum += float((token_loss + latent_loss).detach())
    return {"kl": kl_sum / len(advantages), "loss": loss_sum}


def _clipped(ratio: torch.Tensor, advantage: torch.Tensor, clip: float) -> torch.Tensor:
    return torch.minimum(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage)


def _latent_loss(policy: Policy, out: Completion, chunk: list[_Turn], refinements_of: np.ndarray,
                 config: GRPOConfig) -> torch.Tensor:
    """Minus the clipped ratio of the drawn latents' Gaussian log-probability times their own advantage, each
    refinement weighted 1 / (its episode's refinements)."""
    rows = [r for r, t in enumerate(chunk) if t.latents is not None]
    if not rows:
        return torch.zeros((), device=out.logprobs.device)
    n, d = chunk[rows[0]].latents.shape  # type: ignore[union-attr]
    drawn = torch.zeros(len(chunk), n, d)
    for r in rows:
        drawn[r] = chunk[r].latents  # type: ignore[assignment]
    given = GivenLatents(drawn)
    policy.rollout_from(out, given)
    means = torch.stack(given.means, dim=1)[rows].float()  # (R, N, D)
    sigmas = torch.stack([chunk[r].sigmas for r in rows]).to(means.device)  # type: ignore[misc]
    logp = -0.5 * (((drawn[rows].to(means.device) - means) / sigmas[..., None]) ** 2).sum((1, 2))
    for k, r in enumerate(rows):
        if chunk[r].old_latent_logprob is None:  # the first pass
            chunk[r].old_latent_logprob = logp[k].detach()
    ratio = torch.exp(logp - torch.stack([chunk[r].old_latent_logprob for r in rows]))  # type: ignore[misc]
    weights = torch.tensor([1.0 / refinements_of[chunk[r].episode] for r in rows], device=means.device)
    advantage = torch.tensor([chunk[r].latent_advantage for r in rows], device=means.device)
    return -(_clipped(ratio, advantage, config.clip) * weights).sum()


def _record(step: int, scored: list[tuple[float, dict[str, float]]], stats: dict[str, float], turns: float,
            seconds: float, lr: float, accelerator: Accelerator) -> dict:
    """One log line: the step's mean reward and terms (over every process's episodes), KL, loss, turns/episode and
    the gradients' norms before their clips at 1 (the LM's; the SQR head's, when it trains)."""
    values = torch.tensor([[r, *terms.values()] for r, terms in scored], dtype=torch.float64)
    sums = torch.cat([values.sum(0), torch.tensor([len(values), stats["kl"] * len(values), stats["loss"], turns])])
    if accelerator.num_processes > 1:
        sums = accelerator.reduce(sums.to(accelerator.device), "sum").cpu()
    count = float(sums[len(REWARDS) + 1])
    means = (sums[: len(REWARDS) + 1] / count).tolist()
    record = {"step": step, "reward": round(means[0], 4)}
    record.update({f"reward_{name}": round(v, 4) for name, v in zip(REWARDS, means[1:])})
    record.update({"kl": round(float(sums[-3]) / count, 6), "loss": round(float(sums[-2]), 5),
                   "turns": round(float(sums[-1]) / accelerator.num_processes, 3),
                   **{k: round(v, 4) for k, v in stats.items() if k.startswith("grad_norm")}, "lr": lr,
                   "seconds": round(seconds, 2)})
    if not math.isfinite(record["loss"]):
        raise ConfigError(f"GRPO's loss is {record['loss']} at step {step}: lower lr or latent_noise")
    return record
