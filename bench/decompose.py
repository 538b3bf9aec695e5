"""Where the agent's gains come from: {policy, oracle} judge x {none, hqr, sqr, oracle} refinement, by turns.

Run: `python bench/decompose.py [--index runs/index] [--annotations runs/world/test.jsonl] [--checkpoint DIR]
[--out runs/decompose] [--limit N]` (the checkpoint defaults to the shipped checkpoints/mini/policy).

Each of the 8 settings runs once with `--max-turns` turns (3); its 1- and 2-turn figures come from the same
episodes cut at that turn (`videosearch.eval.turns.truncate_episode`: turns 1..t do not depend on the limit).
Reported per setting and turn limit: VR R@1 and VCMR R@1 at IoU 0.5 with percentile-bootstrap 95 % intervals
over queries; at the last turn also VER and its balanced accuracy, tokens per query and the grounding alone: among
the correct matches (final answer matched on the ground-truth video), the share whose span has IoU >= 0.5. The
search-only baseline (top-1 video, the engine's best segment as the span) is the first row. Paired differences of
VR R@1 (the same resampled queries) compare each refinement with `none` under the same judge, and with its own
first turn.

Predictions are written under `--out`, one file per setting (`policy-sqr-t3.jsonl`, ...; `--limit N` runs the
first N queries into `--out/limit-N/`); a rerun reuses and resumes them. Prints the tables (80 columns), then one
JSON line of every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from videosearch.agent import Agent, AgentConfig
from videosearch.agent.episode import JUDGES, REFINERS
from videosearch.agent.runs import resumable_predictions, write_episodes
from videosearch.agent.videos import VideoCache
from videosearch.corpus.annotations import read_moments
from videosearch.corpus.types import Moment
from videosearch.engine import SearchEngine
from videosearch.errors import VideosearchError
from videosearch.eval import metrics
from videosearch.eval.baseline import run_search_baseline
from videosearch.eval.predictions import Prediction, read_predictions
from videosearch.eval.report import evaluate, per_query_scores
from videosearch.eval.turns import truncate_episode
from videosearch.policy.policy import Policy
from videosearch.shipped import shipped_policy

IOU = 0.5
CELL = 19  # "100.0 [100.0,100.0]"


def grounding(predictions: list[Prediction], moments: list[Moment]) -> dict[str, float]:
    """Among the correct matches (final answer matched, judged video = ground truth): how many, and the percentage
    whose span has IoU >= 0.5 (a match without a span counts as IoU 0); NaN when there is none."""
    by_qid = {p.qid: p for p in predictions}
    finals = [by_qid[m.qid].judgements[-1] if m.qid in by_qid else None for m in moments]
    correct = np.array([f is not None and f.answer == metrics.MATCHED and f.video == m.video_id
                        for f, m in zip(finals, moments)], dtype=bool)
    ious = metrics.moment_ious([f.answer if f else None for f in finals], [f.video if f else None for f in finals],
                               [f.span if f else None for f in finals], [m.video_id for m in moments],
                               [(m.start_s, m.end_s) for m in moments], [m.duration_s for m in moments])
    share = 100.0 * float(np.mean(ious[correct] >= IOU)) if correct.any() else float("nan")
    return {"correct_matches": float(correct.sum()), "grounded_share": share}


def figures(predictions: list[Prediction], moments: list[Moment]) -> dict[str, float]:
    """VR R@1 and VCMR R@1 at IoU 0.5 with their bootstrap intervals, VER (and balanced), tokens and turns per query,
    grounding."""
    scores = evaluate(predictions, moments, ks=(1,), ious=(IOU,))
    keep = ("vr@1", "vr@1_ci_low", "vr@1_ci_high", "vcmr@0.5", "vcmr@0.5_ci_low", "vcmr@0.5_ci_high", "ver",
            "ver_balanced", "generated_tokens", "latent_steps", "mean_turns")
    return {**{key: scores[key] for key in keep}, **grounding(predictions, moments)}


def run_setting(agent: Agent, moments: list[Moment], out_dir: Path) -> list[Prediction]:
    """The predictions of one setting, resumed from (and written to) its file under `out_dir`."""
    config = agent.config
    path = out_dir / f"{config.judge}-{config.refine}-t{config.max_turns}.jsonl"
    done = resumable_predictions(path, moments, config.settings, source="the benchmark's queries")
    write_episodes(agent, moments, path, done, f"{config.judge} judge, {config.refine} refine")
    return read_predictions(path)


SETTINGS = [f"{judge}/{refine}" for judge in JUDGES for refine in REFINERS]


def decompose(engine: SearchEngine, policy: Policy, moments: list[Moment], out_dir: Path, max_turns: int = 3,
              batch_size: int = 16, oracle_steps: int = 30, settings: list[str] | None = None) -> dict:
    """Every figure of the decomposition: `{"queries", "max_turns", "baseline": figures, "runs": {"judge/refine":
    {"1": figures, ...}}}`, percentages; `settings` ("judge/refine") limits it to some of the 8."""
    chosen = settings or SETTINGS
    videos = VideoCache(engine, policy.config, policy.vision.frame_size)  # decoded once for all settings
    baseline = figures(run_search_baseline(engine, moments), moments)
    baseline["ver"] = baseline["ver_balanced"] = float("nan")  # it judges nothing: its "matched" is no verdict
    result: dict = {"queries": len(moments), "max_turns": max_turns, "baseline": baseline, "runs": {}}
    hits: dict[tuple[str, int], np.ndarray] = {}  # (setting, turns) -> per-query VR R@1 hits, for paired deltas
    for judge in JUDGES:
        for refine in REFINERS:
            if f"{judge}/{refine}" not in chosen:
                continue
            config = AgentConfig(judge=judge, refine=refine, max_turns=max_turns, batch_size=batch_size,
                                 oracle_steps=oracle_steps)
            predictions = run_setting(Agent(engine, policy, config, videos), moments, out_dir)
            name, by_turn = f"{judge}/{refine}", {}
            for turns in range(1, max_turns + 1):
                cut = [truncate_episode(p, turns) for p in predictions]
                by_turn[str(turns)] = figures(cut, moments)
                hits[name, turns] = per_query_scores(cut, moments, ks=(1,), ious=(IOU,))["vr@1"].astype(np.float64)
            result["runs"][name] = by_turn
    result["paired"] = {}
    for judge in JUDGES:
        for refine in REFINERS[1:]:
            name = f"{judge}/{refine}"
            if name not in result["runs"] or f"{judge}/none" not in result["runs"]:
                continue
            result["paired"][name] = {
                "vs_none": _paired(hits[name, max_turns], hits[f"{judge}/none", max_turns]),
                "vs_turn1": _paired(hits[name, max_turns], hits[name, 1])}
    return result


def _paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean difference of per-query hits (percent) with its bootstrap 95 % interval (the same resampled queries)."""
    delta, low, high = metrics.paired_difference(a, b)
    return {"delta": 100.0 * delta, "ci_low": 100.0 * low, "ci_high": 100.0 * high}


def _cell(values: dict[str, float], key: str) -> str:
    return f"{values[key]:.1f} [{values[key + '_ci_low']:.1f},{values[key + '_ci_high']:.1f}]"


def _number(value: float, digits: int = 1) -> str:
    return "-" if np.isnan(value) else f"{value:.{digits}f}"


def format_decomposition(result: dict) -> str:
    """The decomposition as plain-text tables, no line over 80 columns."""
    turns = [str(t) for t in range(1, result["max_turns"] + 1)]
    lines = []
    for key, title in (("vr@1", "VR R@1"), ("vcmr@0.5", f"VCMR R@1 at IoU {IOU}")):
        lines += ["", f"{title} (%) [bootstrap 95 %], {result['queries']} queries, by turn limit",
                  f"{'judge':<7} {'refine':<7}" + "".join(f" {'turn ' + t:<{CELL}}" for t in turns)]
        lines.append(f"{'search':<7} {'-':<7} {_cell(result['baseline'], key):<{CELL}}")
        for name, by_turn in result["runs"].items():
            judge, refine = name.split("/")
            lines.append(f"{judge:<7} {refine:<7}" + "".join(f" {_cell(by_turn[t], key):<{CELL}}" for t in turns))
    last = turns[-1]
    lines += ["", f"at {last} turns: VER, balanced VER, costs, correct matches (share at IoU >= {IOU})",
              f"{'judge':<7} {'refine':<7} {'VER':>6} {'bal.':>6} {'tokens/q':>9} {'turns/q':>8} {'correct':>8} "
              f"{'IoU>=' + str(IOU):>9}"]
    rows = [("search", "-", result["baseline"])] + [
        (*name.split("/"), by_turn[last]) for name, by_turn in result["runs"].items()]
    for judge, refine, values in rows:
        lines.append(f"{judge:<7} {refine:<7} {_number(values['ver']):>6} {_number(values['ver_balanced']):>6} "
                     f"{_number(values['generated_tokens']):>9} "
                     f"{_number(values['mean_turns'], 2):>8} {int(values['correct_matches']):>8} "
                     f"{_number(values['grounded_share']):>9}")
    lines += ["", f"paired difference of VR R@1 at {last} turns [bootstrap 95 %]",
              f"{'judge':<7} {'refine':<7} {'- refine none':<{CELL}} {'- its turn 1':<{CELL}}"]
    for name, deltas in result["paired"].items():
        judge, refine = name.split("/")
        cells = [f"{d['delta']:+.1f} [{d['ci_low']:+.1f},{d['ci_high']:+.1f}]" for d in deltas.values()]
        lines.append(f"{judge:<7} {refine:<7}" + "".join(f" {cell:<{CELL}}" for cell in cells))
    return "\n".join(line.rstrip() for line in lines)


def _json_ready(value: object) -> object:
    """NaN (a figure with nothing to average) as null, so that the line is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    return None if isinstance(value, float) and np.isnan(value) else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("runs/index"))
    parser.add_argument("--annotations", type=Path, default=Path("runs/world/test.jsonl"))
    parser.add_argument("--checkpoint", type=Path, default=None, help="policy (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=Path("runs/decompose"), help="folder of the predictions")
    parser.add_argument("--limit", type=int, default=0, help="the first N queries only (0 = all)")
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--oracle-steps", type=int, default=30, help="gradient steps of the oracle latents")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=None, metavar="JUDGE/REFINE",
                        help=f"run only these of {' '.join(SETTINGS)} (default: all)")
    args = parser.parse_args(argv)
    try:
        moments = read_moments(args.annotations).moments
        out_dir = args.out
        if args.limit:
            moments, out_dir = moments[: args.limit], args.out / f"limit-{args.limit}"
        engine = SearchEngine.load(args.index)
        policy = Policy.load(args.checkpoint or shipped_policy(), engine.embedder)
        result = decompose(engine, policy, moments, out_dir, args.max_turns, args.batch_size, args.oracle_steps,
                           args.settings)
    except VideosearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_decomposition(result))
    print(json.dumps(_json_ready({"bench": "decompose", "out": str(out_dir), **result})), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
