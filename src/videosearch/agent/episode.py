"""The episode loop: retrieve -> verify -> refine -> retrieve ... -> ground, batched across queries.

    runner = Agent(engine, policy, AgentConfig(judge="policy", refine="sqr", max_turns=3))
    predictions = runner.run(moments)          # one `Prediction` per moment, every turn recorded

Three orthogonal settings, so that each component can be swapped for an oracle and every gain located:
- `judge`: `policy` (the policy's verdict) or `oracle` (the ground truth forces the verdict: matched exactly when
  the shown video is the moment's; the span and the reasoning are still the policy's).
- `refine`, after a rejection: `none` (the query vector is kept and only the judged video is excluded, so the
  episode walks down the ranking), `hqr` (the policy rewrites the query as text, which is embedded), `sqr`
  (latents rolled out on the turn's KV cache, inserted into the original query) or `oracle` (latents optimised
  against the ground truth, as `videosearch retriever oracle-refine` does).
- `max_turns`: the turn limit; 1 is the one-shot agent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from videosearch.agent.videos import VideoCache
from videosearch.corpus.types import Moment
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.eval.oracle_refine import OracleConfig, optimise_latents
from videosearch.eval.predictions import Judgement, Prediction
from videosearch.eval.turns import RANK_AFTER, RANKING_AFTER
from videosearch.policy.policy import Policy, PolicyTurn

JUDGES = ("policy", "oracle")
REFINERS = ("none", "hqr", "sqr", "oracle")
SETTINGS = ("judge", "refine", "max_turns")  # what a predictions file records of its run (`Prediction.extra`)


@dataclass
class AgentConfig:
    """How episodes run; the policy and the index are given separately."""

    judge: str = "policy"  # policy | oracle: who decides matched / not_matched
    refine: str = "sqr"  # none | hqr | sqr | oracle: how the query changes after a rejection
    max_turns: int = 3  # turn limit per episode; 1 = one-shot
    exclude_judged: bool = True  # a video judged once is not shown again
    batch_size: int = 16  # episodes run together
    ranking_depth: int = 100  # videos kept in each recorded ranking
    oracle_steps: int = 30  # refine=oracle: gradient steps of the latents per rejection

    def __post_init__(self) -> None:
        if self.judge not in JUDGES:
            raise ConfigError(f"unknown judge {self.judge!r}; choose one of {', '.join(JUDGES)}")
        if self.refine not in REFINERS:
            raise ConfigError(f"unknown refine {self.refine!r}; choose one of {', '.join(REFINERS)}")
        for name in ("max_turns", "batch_size", "ranking_depth", "oracle_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.refine == "none" and not self.exclude_judged and self.max_turns > 1:
            raise ConfigError("refine=none without exclude_judged shows the same video at every turn: exclude "
                              "judged videos or set max_turns=1")

    @property
    def settings(self) -> dict[str, object]:
        """The settings a predictions file records and a resumed run must share."""
        return {name: getattr(self, name) for name in SETTINGS}


def _rank(ranking: list[str], video_id: str) -> int | None:
    """1-based rank of `video_id` in `ranking`, None when absent."""
    return ranking.index(video_id) + 1 if video_id in ranking else None


def _clamp(span: tuple[float, float] | None, duration: float) -> tuple[float, float] | None:
    """DESIGN.md section 5: spans are clamped to [0, duration] and swapped when reversed."""
    if span is None:
        return None
    start, end = sorted(span)
    return (min(max(start, 0.0), duration), min(max(end, 0.0), duration))


@dataclass
class _Refinement:
    """The refined query vectors of a turn's rejected rows, in the order of the rows."""

    vectors: np.ndarray  # float32 (R, D)
    latent_steps: int  # per refined row, taken by the policy
    extras: list[dict]  # per refined row, what the judgement records of the refinement


class Agent:
    """Runs episodes with one judge, one refiner and one turn limit over an index with a policy."""

    def __init__(self, engine: SearchEngine, policy: Policy, config: AgentConfig,
                 videos: VideoCache | None = None) -> None:
        self.engine, self.policy, self.config = engine, policy, config
        self.videos = videos or VideoCache(engine, policy.config, policy.vision.frame_size)
        self._corpus: tuple[dict[str, int], torch.Tensor] | None = None  # refine=oracle: rows and (V, D) vectors

    def run(self, moments: list[Moment]) -> Iterator[Prediction]:
        """Predictions in the order of `moments`, one batch of episodes at a time."""
        for start in range(0, len(moments), self.config.batch_size):
            yield from self.run_batch(moments[start: start + self.config.batch_size])

    def _search(self, vectors: np.ndarray, judged: list[set[str]]) -> list[list[str]]:
        exclude = judged if self.config.exclude_judged else None
        depth = min(self.config.ranking_depth, len(self.engine))
        return [[h.video_id for h in hits] for hits in self.engine.search_by_vector(vectors, depth, exclude)]

    def run_batch(self, moments: list[Moment]) -> list[Prediction]:
        """Episodes for a batch of queries, run together turn by turn."""
        config = self.config
        queries = [m.query for m in moments]
        vectors = self.engine.encode_queries(queries)
        judged: list[set[str]] = [set() for _ in moments]
        rankings = self._search(vectors, judged)
        first_rankings = [list(r) for r in rankings]
        judgements: list[list[Judgement]] = [[] for _ in moments]
        active = list(range(len(moments)))
        for turn_index in range(config.max_turns):
            began = time.perf_counter()
            active = [i for i in active if rankings[i]]  # nothing left to show ends an episode
            if not active:
                break
            shown = [rankings[i][0] for i in active]
            verdicts: list[bool | None] | None = None
            if config.judge == "oracle":
                verdicts = [video == moments[i].video_id for i, video in zip(active, shown)]
            turn = self.policy.generate([queries[i] for i in active], [self.videos[v] for v in shown],
                                        mode="hqr" if config.refine == "hqr" else "sqr", verdicts=verdicts)
            last_turn = turn_index == config.max_turns - 1
            rejected = [] if last_turn else [r for r, parsed in enumerate(turn.parsed) if parsed.answer != "matched"]
            rows = [active[r] for r in rejected]
            before = [_rank(rankings[i], moments[i].video_id) for i in active]
            for i, video in zip(active, shown):
                judged[i].add(video)
            refinement = _Refinement(np.zeros((0, vectors.shape[1]), np.float32), 0, [])
            if rejected:
                refinement = self._refine(turn, rejected, [moments[i] for i in rows], vectors[rows])
                vectors[rows] = refinement.vectors
                for i, ranking in zip(rows, self._search(vectors[rows], [judged[i] for i in rows])):
                    rankings[i] = ranking
            seconds = (time.perf_counter() - began) / len(active)  # the batch's turn, shared by its episodes
            for r, (i, video) in enumerate(zip(active, shown)):
                parsed, gt = turn.parsed[r], moments[i].video_id
                extra = {"text": turn.texts[r], "match_prob": round(float(turn.match_prob[r]), 4),
                         "gt_rank_before": before[r], RANK_AFTER: None}
                latent_steps = 0
                if r in rejected:
                    k = rejected.index(r)
                    extra.update({RANK_AFTER: _rank(rankings[i], gt), RANKING_AFTER: list(rankings[i]),
                                  **refinement.extras[k]})
                    latent_steps = refinement.latent_steps
                judgements[i].append(Judgement(
                    video=video, answer=parsed.answer,
                    span=_clamp(parsed.span_s, self.engine.video_info(video)["duration_s"]),
                    generated_tokens=turn.generated_tokens[r], latent_steps=latent_steps, seconds=seconds,
                    extra=extra))
            active = rows
        return [Prediction(qid=m.qid, query=m.query, ranking_turn1=first_rankings[i], ranking=rankings[i],
                           judgements=judgements[i], extra=dict(config.settings))
                for i, m in enumerate(moments)]

    def _refine(self, turn: PolicyTurn, rejected: list[int], moments: list[Moment],
                vectors: np.ndarray) -> _Refinement:
        """New query vectors for the rejected rows of `turn` (their moments and current (R, D) vectors given)."""
        refine, queries = self.config.refine, [turn.queries[r] for r in rejected]
        if refine == "sqr":
            latents = self.policy.refine(turn)[rejected].cpu()  # the embedder runs on the CPU
            with torch.no_grad():  # q' = the original query moved by the learned gate towards the one with latents
                refined = self.policy.sqr.refined_query(torch.from_numpy(self.engine.encode_queries(queries)),
                                                        torch.from_numpy(self.engine.encode_refined(queries, latents)))
            return _Refinement(refined.numpy(), self.policy.config.n_latents, [{} for _ in rejected])
        if refine == "hqr":
            written = [turn.parsed[r].rewrite for r in rejected]  # None where the turn wrote no rewrite
            rewrites = [text or query for text, query in zip(written, queries)]
            return _Refinement(self.engine.encode_queries(rewrites), 0, [{"rewrite": text} for text in written])
        if refine == "oracle":
            return _Refinement(self._oracle_vectors(queries, moments, vectors), 0, [{} for _ in rejected])
        return _Refinement(vectors.copy(), 0, [{} for _ in rejected])  # none: the same query, minus what was judged

    def _oracle_vectors(self, queries: list[str], moments: list[Moment], vectors: np.ndarray) -> np.ndarray:
        """(R, D) query vectors with latents optimised to rank each moment's video first; a moment whose video is
        not in the index keeps its vector (there is nothing to aim at)."""
        if self._corpus is None:
            ids = self.engine.video_ids
            self._corpus = ({v: row for row, v in enumerate(ids)},
                            torch.from_numpy(np.ascontiguousarray(self.engine.store.get_vectors(ids), np.float32)))
        rows, corpus = self._corpus
        known = [k for k, m in enumerate(moments) if m.video_id in rows]
        refined = vectors.copy()
        if known:
            texts = [queries[k] for k in known]
            targets = torch.tensor([rows[moments[k].video_id] for k in known])
            oracle = OracleConfig(n_latents=self.policy.config.n_latents, steps=self.config.oracle_steps)
            latents = optimise_latents(self.engine.embedder, texts, corpus, targets, oracle)
            with torch.no_grad():
                refined[known] = self.engine.embedder.embed_text_with_latents(texts, latents).float().cpu().numpy()
        return refined
