"""The claim experiment: does Soft Query Refinement find more than the search it drives, the walk and rewriting?

    result = run_claim(load_config(ClaimConfig, "configs/mini.yaml", "claim"))   # table, JSON and plot in `out`

On one index and its queries (the default synthetic world's test split), with the same retriever in every row: the
search alone; the one-shot agent (the first turn of the first policy's SQR episodes: exactly what a one-turn agent
writes); the walk (the same judge, the judged video excluded, the query unchanged); HQR (the policy rewrites the
query as text); SQR with each policy of `policies` (after SFT, after GRPO, each GRPO variant); and the ceiling of
latents optimised against the truth. Each agent runs once with `max_turns` turns and its 1..max_turns figures are
those episodes cut at each turn. Every figure has a percentile-bootstrap 95 % interval over queries, and each row's
VR R@1 and VCMR R@1 at IoU 0.5 are paired with the one-shot agent's and the walk's at the same turn limit.
Predictions are kept under `out` (one file per agent run), so a rerun resumes them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from videosearch.agent import Agent, AgentConfig
from videosearch.agent.runs import resumable_predictions, write_episodes
from videosearch.agent.videos import VideoCache
from videosearch.atomic import write_text_atomic
from videosearch.corpus.annotations import read_moments
from videosearch.corpus.types import Moment
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.eval import metrics
from videosearch.eval.baseline import run_search_baseline
from videosearch.eval.plots import plot_by_turns
from videosearch.eval.predictions import Prediction, read_predictions
from videosearch.eval.report import evaluate, per_query_scores
from videosearch.eval.turns import truncate_episode
from videosearch.policy.policy import Policy

IOUS = (0.3, 0.5, 0.7)
PAIRED = ("vr@1", "vcmr@0.5")  # the figures paired with the one-shot agent's and the walk's
RESULT_FILE, TABLE_FILE, PLOT_FILE = "claim.json", "claim.md", "claim.png"


@dataclass
class ClaimConfig:
    """What the claim experiment runs on; `policies` maps a row's name to a policy checkpoint, in table order."""

    index: str | None = None  # over the test split's videos
    annotations: str | None = None  # the test split's queries
    out: str = "runs/claim"
    # the first policy also judges the one-shot agent, the walk, HQR and the oracle-latent ceiling
    policies: dict[str, str] = field(default_factory=dict)
    max_turns: int = 3
    batch_size: int = 16
    oracle_steps: int = 30  # gradient steps of the oracle latents per rejection
    limit: int = 0  # the first N queries only (0 = all)

    def __post_init__(self) -> None:
        if not isinstance(self.policies, dict) or not all(isinstance(v, str) for v in self.policies.values()):
            raise ConfigError("claim.policies must map names to policy checkpoints, e.g. {SFT: checkpoints/mini/"
                              "policy}")
        for name in ("max_turns", "batch_size", "oracle_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"claim.{name} must be >= 1, got {getattr(self, name)}")
        if self.limit < 0:
            raise ConfigError(f"claim.limit must be >= 0, got {self.limit}")


@dataclass(frozen=True)
class _Run:
    """One agent run of the experiment: a policy with a refiner; rows of the table are cut from it."""

    row: str
    policy: str
    refine: str

    @property
    def file(self) -> str:
        return f"{self.row.lower().replace(' ', '-')}.jsonl"


def _runs(config: ClaimConfig) -> list[_Run]:
    (first_name, first), *_ = config.policies.items()
    return ([_Run("walk", first, "none"), _Run("HQR", first, "hqr")]
            + [_Run(f"SQR {name}", path, "sqr") for name, path in config.policies.items()]
            + [_Run("oracle latents", first, "oracle")])


def run_claim(config: ClaimConfig) -> dict:
    """Run (or resume) every agent, score every row at every turn limit, write the JSON, table and plot."""
    if not config.index or not config.annotations or not config.policies:
        raise ConfigError("the claim experiment needs `index` (over the test videos), `annotations` (their queries) "
                          "and `policies` (name: checkpoint, at least one)")
    began = time.perf_counter()
    engine = SearchEngine.load(config.index)
    moments = read_moments(config.annotations).moments
    if config.limit:
        moments = moments[: config.limit]
    out = Path(config.out)
    predictions: dict[str, list[Prediction]] = {}
    videos: VideoCache | None = None
    loaded: dict[str, Policy] = {}
    for run in _runs(config):
        if run.policy not in loaded:
            loaded[run.policy] = Policy.load(run.policy, engine.embedder)
        policy = loaded[run.policy]
        videos = videos or VideoCache(engine, policy.config, policy.vision.frame_size)
        agent = Agent(engine, policy, AgentConfig(judge="policy", refine=run.refine, max_turns=config.max_turns,
                                                  batch_size=config.batch_size, oracle_steps=config.oracle_steps),
                      videos)
        path = out / run.file
        done = resumable_predictions(path, moments, agent.config.settings, source=config.annotations)
        write_episodes(agent, moments, path, done, run.row)
        predictions[run.row] = read_predictions(path)
    first_sqr = f"SQR {next(iter(config.policies))}"
    search = run_search_baseline(engine, moments)
    one_shot = [truncate_episode(p, 1) for p in predictions[first_sqr]]  # the same at every turn limit
    table: dict[str, dict[str, dict]] = {}
    hits: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    for turns in range(1, config.max_turns + 1):
        cut = {"search": search, "one-shot": one_shot,
               **{name: [truncate_episode(p, turns) for p in runs] for name, runs in predictions.items()}}
        for name, preds in cut.items():
            table.setdefault(name, {})[str(turns)] = _figures(preds, moments)
            hits[name, turns] = {k: v.astype(np.float64) for k, v in
                                 per_query_scores(preds, moments, ks=(1,), ious=IOUS).items()}
        table["search"][str(turns)]["ver"] = float("nan")  # it judges nothing: its "matched" is no verdict
    paired = {name: {str(t): {f"{key} - {base}": _paired(hits[name, t][key], hits[base, t][key])
                              for base in ("one-shot", "walk") if base != name for key in PAIRED}
                     for t in range(1, config.max_turns + 1)}
              for name in table if name not in ("search", "one-shot")}
    order = ["search", "one-shot", "walk", "HQR", *[f"SQR {n}" for n in config.policies], "oracle latents"]
    result = {"queries": len(moments), "max_turns": config.max_turns, "index": config.index,
              "annotations": config.annotations, "policies": dict(config.policies),
              "rows": {name: table[name] for name in order}, "paired": paired,
              "seconds": round(time.perf_counter() - began, 1)}
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / RESULT_FILE, json.dumps(_json_ready(result), indent=2))
    write_text_atomic(out / TABLE_FILE, format_claim(result) + "\n")
    plot_by_turns({name: result["rows"][name] for name in order}, ["vr@1", "vcmr@0.5"],
                  ["VR R@1 (%)", "VCMR R@1 at IoU 0.5 (%)"], out / PLOT_FILE)
    return result


def _figures(predictions: list[Prediction], moments: list[Moment]) -> dict[str, float]:
    """VR R@1, VCMR R@1 at each IoU, each with its interval; VER; tokens, latent steps and seconds per query."""
    scores = evaluate(predictions, moments, ks=(1,), ious=IOUS)
    per_query = per_query_scores(predictions, moments, ks=(1,), ious=IOUS)
    figures = {}
    for key in ("vr@1", *[f"vcmr@{iou}" for iou in IOUS]):
        low, high = metrics.bootstrap_ci(per_query[key].astype(np.float64))
        figures.update({key: scores[key], f"{key}_ci_low": 100 * low, f"{key}_ci_high": 100 * high})
    figures.update({key: scores[key] for key in ("ver", "generated_tokens", "latent_steps", "seconds_per_query")})
    return figures


def _paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    delta, low, high = metrics.paired_difference(a, b)
    return {"delta": 100 * delta, "ci_low": 100 * low, "ci_high": 100 * high}


def _json_ready(value: object) -> object:
    """Rounded, and NaN (a figure with nothing to average) as null, so that the file is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, float):
        return None if np.isnan(value) else round(value, 3)
    return value


def format_claim(result: dict) -> str:
    """The table as Markdown: one row per method and turn limit, intervals in brackets, then the paired deltas."""
    def cell(values: dict, key: str) -> str:
        value = values.get(key)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "-"
        if f"{key}_ci_low" in values:
            return f"{value:.1f} [{values[key + '_ci_low']:.1f}, {values[key + '_ci_high']:.1f}]"
        return f"{value:.1f}" if key != "seconds_per_query" else f"{value:.2f}"

    keys = ["vr@1", "vcmr@0.3", "vcmr@0.5", "vcmr@0.7", "ver", "generated_tokens", "latent_steps",
            "seconds_per_query"]
    lines = [f"{result['queries']} queries; bootstrap 95 % intervals in brackets",
             "", "| method | turns | VR R@1 | VCMR R@1 0.3 | VCMR R@1 0.5 | VCMR R@1 0.7 | VER | tokens/q | latent "
             "steps/q | s/q |", "|" + " --- |" * 10]
    for name, by_turn in result["rows"].items():
        for turns, values in by_turn.items():
            lines.append(f"| {name} | {turns} | " + " | ".join(cell(values, k) for k in keys) + " |")
    lines += ["", "Paired differences (same resampled queries), percentage points:", "",
              "| method | turns | " + " | ".join(f"{k.replace('@', ' R@')}" for k in _paired_keys(result))
              + " |", "|" + " --- |" * (2 + len(_paired_keys(result)))]
    for name, by_turn in result["paired"].items():
        for turns, deltas in by_turn.items():
            cells = [f"{d['delta']:+.1f} [{d['ci_low']:+.1f}, {d['ci_high']:+.1f}]" if (d := deltas.get(k)) else "-"
                     for k in _paired_keys(result)]
            lines.append(f"| {name} | {turns} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _paired_keys(result: dict) -> list[str]:
    return [f"{key} - {base}" for base in ("one-shot", "walk") for key in PAIRED]
