"""The whole `mini` recipe from nothing, stage by stage: `videosearch train all --config configs/mini.yaml`.

    world -> retriever -> indexes (train, val) -> frame encoder -> SFT data -> SFT -> verdict calibration
          -> SQR-head world and its index -> SQR-head turns -> SQR head -> GRPO -> its calibration
          -> SFT or GRPO (the SQR agent of each on the val split) -> export

GRPO starts from the SFT policy with its trained SQR head and samples its episodes on the same second world (on
the first world's train split the retriever's top video is nearly always right, and a group of equal rewards
teaches nothing). The policy that ships is GRPO's only if its SQR agent beats SFT's on the val split's VR R@1
(`grpo_choice.json` holds both, with the paired interval).

The SQR head learns from a second world's train split (`recipe.refine_world_seed`): videos the retriever never
trained on, so its rankings miss the way they miss on a test split (on its own train videos the retriever ranks
far better than on unseen ones, and a head fitted there learns to refine queries that are nearly right).

Every stage writes its output under `runs` and is skipped when that output is complete, so a run killed at any
point starts again at the stage it was in (SFT resumes from its last checkpoint). Each stage's wall time is
printed, and kept in `<runs>/recipe_times.json`. The last stage copies what was trained (the retriever and the
calibrated policy) to `export`, the checkpoints that ship (`checkpoints/mini`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from videosearch.agent import Agent, AgentConfig
from videosearch.atomic import write_text_atomic
from videosearch.config import load_config
from videosearch.corpus.annotations import read_moments
from videosearch.corpus.world import WorldConfig, generate_world
from videosearch.embed import load_embedder
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.eval.metrics import paired_difference
from videosearch.eval.report import evaluate, per_query_scores
from videosearch.folders import publish_folder
from videosearch.policy.policy import Policy
from videosearch.progress import track
from videosearch.train.calibrate import REPORT_FILE, calibrate_verdict
from videosearch.train.frame_encoder import LOG_FILE as ENCODER_LOG
from videosearch.train.frame_encoder import FrameEncoderTrainConfig, train_frame_encoder
from videosearch.train.grpo import GRPOConfig, train_grpo
from videosearch.train.refiner import LOG_FILE as REFINER_LOG
from videosearch.train.refiner import RefinerTrainConfig, train_refiner
from videosearch.train.retriever import RetrieverTrainConfig, train_retriever
from videosearch.train.sft import FINAL, SFTConfig, train_sft
from videosearch.train.sft_data import build_world_refine_turns, build_world_sft_data, write_sft_examples

logger = logging.getLogger(__name__)
TIMES_FILE = "recipe_times.json"
CHOICE_FILE = "grpo_choice.json"


@dataclass
class RecipeConfig:
    """Where the recipe works and what it builds; the stages' own settings are the preset's other sections."""

    runs: str = "runs"
    world_size: str = "default"
    world_seed: int = 0
    sft_examples: int = 0  # balanced SFT examples built from the train split (0 = every query's)
    hqr_fraction: float = 0.25
    family_negatives: float = 0.0  # share of not-matched SFT turns showing a video of the ground truth's family
    refine_examples: int = 800  # not-matched turns the SQR-head stage trains on (0 = every one)
    refine_turns: int = 2  # those turns come from the first N wrong videos of each missed query
    refine_world_seed: int = 1000  # the world whose train split, unseen by the retriever, the SQR head learns on
    export: str = ""  # copy the trained retriever and policy here at the end ("" = do not)

    def __post_init__(self) -> None:
        if not 0.0 <= self.family_negatives <= 1.0:
            raise ConfigError(f"recipe.family_negatives must be in [0, 1] (got {self.family_negatives})")
        if self.sft_examples < 0 or self.refine_examples < 0:
            raise ConfigError("recipe.sft_examples and recipe.refine_examples must be >= 0 (0 = all)")
        if self.refine_turns < 1:
            raise ConfigError("recipe.refine_turns must be >= 1")
        if self.refine_world_seed == self.world_seed:
            raise ConfigError("recipe.refine_world_seed must differ from recipe.world_seed: the SQR head learns on "
                              "videos the retriever was not trained on")


def run_recipe(config_path: str | Path, overrides: list[str] | None = None) -> dict[str, float]:
    """Run every stage that is not complete yet; returns each stage's wall time in seconds (0 = skipped)."""
    overrides = overrides or []
    recipe = load_config(RecipeConfig, config_path, "recipe", _section(overrides, "recipe"))
    runs = Path(recipe.runs)
    world, retriever = runs / "world", runs / "retriever"
    index_train, index_val, encoder = runs / "index_train", runs / "index_val", runs / "frame_encoder"
    sft_data, sft_out, refined = runs / "sft_data" / "train.jsonl", runs / "sft", runs / "refiner"
    refine_data = runs / "sft_data" / "refine_turns.jsonl"
    refine_world, index_refine = runs / "world_refine", runs / "index_refine"
    world_config = WorldConfig.preset(recipe.world_size)
    policy = sft_out / FINAL

    def build_index(split: str, out: Path, source: Path = world) -> None:
        engine, _ = SearchEngine.build(source / "videos" / split, load_embedder(retriever))
        engine.save(out)

    def sft_examples() -> None:
        examples, stats = build_world_sft_data(world, index_train, "train", seed=recipe.world_seed,
                                               hqr_fraction=recipe.hqr_fraction,
                                               max_examples=recipe.sft_examples or None,
                                               family_negatives=recipe.family_negatives, reader=sft.policy)
        write_sft_examples(sft_data, examples)
        logger.info("SFT data: %s", stats)

    def refine_turns() -> None:
        turns = build_world_refine_turns(refine_world, index_refine, "train", turns=recipe.refine_turns,
                                         seed=recipe.world_seed, max_examples=recipe.refine_examples or None,
                                         reader=sft.policy)
        write_sft_examples(refine_data, turns)
        logger.info("SQR-head turns: %d, %d of them after a first rejection", len(turns), sum(bool(t.seen)
                                                                                              for t in turns))

    sft = load_config(SFTConfig, config_path, "sft", _section(overrides, "sft"), data=str(sft_data),
                      index=str(index_train), out=str(sft_out))
    sft = replace(sft, policy=replace(sft.policy, frame_encoder=str(encoder)))
    stages: list[tuple[str, Callable[[], bool], Callable[[], object]]] = [
        ("world", lambda: (world / "world.json").is_file(),
         lambda: generate_world(world, recipe.world_seed, world_config)),
        ("retriever", lambda: (retriever / "train_log.json").is_file(),
         lambda: train_retriever(load_config(RetrieverTrainConfig, config_path, "retriever",
                                             _section(overrides, "retriever"), world=str(world), out=str(retriever)))),
        ("index train", lambda: (index_train / "engine.json").is_file(), lambda: build_index("train", index_train)),
        ("index val", lambda: (index_val / "engine.json").is_file(), lambda: build_index("val", index_val)),
        ("frame encoder", lambda: (encoder / ENCODER_LOG).is_file(),
         lambda: train_frame_encoder(load_config(FrameEncoderTrainConfig, config_path, "frame_encoder",
                                                 _section(overrides, "frame_encoder"), world=str(world),
                                                 out=str(encoder)))),
        ("SFT data", lambda: sft_data.is_file() and sft_data.stat().st_size > 0, sft_examples),
        ("SFT", lambda: (policy / "policy.json").is_file(), lambda: train_sft(sft)),
        ("calibration", lambda: (policy / REPORT_FILE).is_file(),
         lambda: calibrate_verdict(policy, index_val, world / "val.jsonl")),
        ("SQR-head world", lambda: (refine_world / "world.json").is_file(),
         lambda: generate_world(refine_world, recipe.refine_world_seed, world_config, splits=("train",))),
        ("index SQR-head", lambda: (index_refine / "engine.json").is_file(),
         lambda: build_index("train", index_refine, refine_world)),
        ("SQR-head turns", lambda: refine_data.is_file() and refine_data.stat().st_size > 0, refine_turns),
        ("SQR head", lambda: (refined / REFINER_LOG).is_file(),
         lambda: train_refiner(load_config(RefinerTrainConfig, config_path, "refiner", _section(overrides, "refiner"),
                                           checkpoint=str(policy), data=str(refine_data), index=str(index_refine),
                                           out=str(refined)))),
    ]
    grpo_out, choice = runs / "grpo", runs / CHOICE_FILE
    grpo = load_config(GRPOConfig, config_path, "grpo", _section(overrides, "grpo"), policy=str(refined),
                       index=str(index_refine), annotations=str(refine_world / "train.jsonl"), out=str(grpo_out))
    stages += [
        ("GRPO", lambda: (grpo_out / FINAL / "policy.json").is_file(), lambda: train_grpo(grpo)),
        ("GRPO calibration", lambda: (grpo_out / FINAL / REPORT_FILE).is_file(),
         lambda: calibrate_verdict(grpo_out / FINAL, index_val, world / "val.jsonl")),
        ("SFT or GRPO", choice.is_file,
         lambda: choose_on_val({"SFT": refined, "GRPO": grpo_out / FINAL}, index_val, world / "val.jsonl", choice)),
    ]
    if recipe.export:
        export = Path(recipe.export)
        stages.append(("export", lambda: False,
                       lambda: _export(retriever, Path(json.loads(choice.read_text())["path"]), export)))
    times = _read_times(runs / TIMES_FILE)
    for name, done, run in stages:
        if done():
            logger.info("%-14s done (%s)", name, _minutes(times.get(name, 0.0)))
            continue
        logger.info("%-14s starting", name)
        began = time.perf_counter()
        run()
        times[name] = round(time.perf_counter() - began, 1)
        logger.info("%-14s took %s", name, _minutes(times[name]))
        runs.mkdir(parents=True, exist_ok=True)
        write_text_atomic(runs / TIMES_FILE, json.dumps(times, indent=2))
    return times


def choose_on_val(candidates: dict[str, Path], index: Path, annotations: Path, out: Path) -> dict:
    """The SQR agent of each candidate policy (two: the incumbent first) on held-out queries: VR R@1 and VCMR R@1 at
    IoU 0.5 with bootstrap intervals, and the second minus the first, paired. The second is chosen only if its
    VR R@1 is higher; the report (with the chosen checkpoint's path) is written to `out` and returned."""
    engine = SearchEngine.load(index)
    moments = read_moments(annotations).moments
    figures, hits = {}, {}
    for name, path in candidates.items():
        agent = Agent(engine, Policy.load(path, engine.embedder), AgentConfig(judge="policy", refine="sqr"))
        predictions = list(track(agent.run(moments), f"{name} on {len(moments)} val queries", total=len(moments)))
        scores = evaluate(predictions, moments, ks=(1,), ious=(0.5,))
        figures[name] = {key: round(scores[key], 2) for key in ("vr@1", "vr@1_ci_low", "vr@1_ci_high", "vcmr@0.5",
                                                                "vcmr@0.5_ci_low", "vcmr@0.5_ci_high", "ver")}
        hits[name] = per_query_scores(predictions, moments, ks=(1,), ious=(0.5,))
    first, second = candidates
    paired = {}
    for key in ("vr@1", "vcmr@0.5"):
        delta, low, high = paired_difference(hits[second][key], hits[first][key])
        paired[key] = {"delta": round(100 * delta, 2), "ci_low": round(100 * low, 2), "ci_high": round(100 * high, 2)}
    chosen = second if figures[second]["vr@1"] > figures[first]["vr@1"] else first
    report = {"annotations": str(annotations), "queries": len(moments), "max_turns": AgentConfig().max_turns,
              "figures": figures, f"{second} - {first}": paired, "chosen": chosen, "path": str(candidates[chosen])}
    write_text_atomic(out, json.dumps(report, indent=2))
    logger.info("%s: VR R@1 %.1f against %s's %.1f (paired %+.1f [%+.1f, %+.1f]): %s ships", second,
                figures[second]["vr@1"], first, figures[first]["vr@1"], paired["vr@1"]["delta"],
                paired["vr@1"]["ci_low"], paired["vr@1"]["ci_high"], chosen)
    return report


def _export(retriever: Path, policy: Path, out: Path) -> None:
    """Copy what ships: the retriever (config + video tower) and the policy checkpoint (LoRA, heads, encoder)."""
    for source, name in ((retriever, "retriever"), (policy, "policy")):
        publish_folder(out / name, lambda folder, source=source: shutil.copytree(source, folder, dirs_exist_ok=True))


def _section(overrides: list[str], section: str) -> list[str]:
    """The `section.key=value` overrides, with the section prefix removed."""
    prefix = f"{section}."
    return [item[len(prefix):] for item in overrides if item.startswith(prefix)]


def _read_times(path: Path) -> dict[str, float]:
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in values.items()} if isinstance(values, dict) else {}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"
