"""The episode loop: retrieve -> verify -> refine -> retrieve ... -> ground, batched across queries.

    runner = Agent(engine, policy, AgentConfig(mode="sqr"))
    predictions = runner.run(moments)          # one `Prediction` per moment, every turn recorded

Modes: `oneshot` (one turn, no refinement), `hqr` (the policy rewrites the query as text, which is embedded
again) and `sqr` (latents rolled out on the turn's KV cache are inserted into the original query).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from videosearch.agent.videos import VideoCache
from videosearch.corpus.types import Moment
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.eval.predictions import Judgement, Prediction
from videosearch.policy.policy import Policy

MODES = ("oneshot", "hqr", "sqr")


@dataclass
class AgentConfig:
    """How episodes run; the policy and the index are given separately."""

    mode: str = "sqr"
    max_turns: int = 3
    exclude_judged: bool = True  # a video judged once is not shown again
    batch_size: int = 16
    ranking_depth: int = 100

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.max_turns < 1 or self.batch_size < 1 or self.ranking_depth < 1:
            raise ConfigError("max_turns, batch_size and ranking_depth must be >= 1")


def _rank(ranking: list[str], video_id: str) -> int | None:
    """1-based rank of `video_id` in `ranking`, None when absent."""
    return ranking.index(video_id) + 1 if video_id in ranking else None


def _clamp(span: tuple[float, float] | None, duration: float) -> tuple[float, float] | None:
    """DESIGN.md section 5: spans are clamped to [0, duration] and swapped when reversed."""
    if span is None:
        return None
    start, end = sorted(span)
    return (min(max(start, 0.0), duration), min(max(end, 0.0), duration))


class Agent:
    """Runs episodes of one mode over an index with a policy."""

    def __init__(self, engine: SearchEngine, policy: Policy, config: AgentConfig) -> None:
        self.engine, self.policy, self.config = engine, policy, config
        self.videos = VideoCache(engine, policy.config, policy.vision.frame_size)

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
        config, policy = self.config, self.policy
        queries = [m.query for m in moments]
        vectors = self.engine.encode_queries(queries)
        judged: list[set[str]] = [set() for _ in moments]
        rankings = self._search(vectors, judged)
        first_rankings = [list(r) for r in rankings]
        judgements: list[list[Judgement]] = [[] for _ in moments]
        active = list(range(len(moments)))
        max_turns = 1 if config.mode == "oneshot" else config.max_turns
        for turn_index in range(max_turns):
            began = time.perf_counter()
            shown = [rankings[i][0] if rankings[i] else None for i in active]
            active = [i for i, video in zip(active, shown) if video is not None]  # nothing left to show
            shown = [v for v in shown if v is not None]
            if not active:
                break
            turn = policy.generate([queries[i] for i in active], [self.videos[v] for v in shown],
                                   mode="sqr" if config.mode == "oneshot" else config.mode)
            last_turn = turn_index == max_turns - 1
            refine = [r for r, parsed in enumerate(turn.parsed) if parsed.answer != "matched" and not last_turn]
            latent_steps = 0
            if refine and config.mode == "sqr":
                latents = policy.refine(turn)[refine].cpu()  # the embedder runs on the CPU
                vectors[[active[r] for r in refine]] = self.engine.encode_refined([turn.queries[r] for r in refine],
                                                                                  latents)
                latent_steps = policy.config.n_latents
            elif refine and config.mode == "hqr":
                rewrites = [turn.parsed[r].rewrite or turn.queries[r] for r in refine]
                vectors[[active[r] for r in refine]] = self.engine.encode_queries(rewrites)
            for r, i in enumerate(active):
                judged[i].add(shown[r])
            new_rankings = self._search(vectors[[active[r] for r in refine]], [judged[active[r]] for r in refine]) \
                if refine else []
            seconds = (time.perf_counter() - began) / len(active)  # the batch's turn, shared by its episodes
            for r, i in enumerate(active):
                refined = r in refine
                gt = moments[i].video_id
                before = _rank(rankings[i], gt)
                if refined:
                    rankings[i] = new_rankings[refine.index(r)]
                parsed = turn.parsed[r]
                judgements[i].append(Judgement(
                    video=shown[r], answer=parsed.answer,
                    span=_clamp(parsed.span_s, self.engine.video_info(shown[r])["duration_s"]),
                    generated_tokens=turn.generated_tokens[r], latent_steps=latent_steps if refined else 0,
                    seconds=seconds,
                    extra={"text": turn.texts[r], "gt_rank_before": before,
                           "gt_rank_after": _rank(rankings[i], gt) if refined else None,
                           **({"rewrite": parsed.rewrite} if refined and config.mode == "hqr" else {})}))
            active = [active[r] for r in refine]
        return [Prediction(qid=m.qid, query=m.query, ranking_turn1=first_rankings[i], ranking=rankings[i],
                           judgements=judgements[i], extra={"mode": config.mode})
                for i, m in enumerate(moments)]
