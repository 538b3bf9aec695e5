"""`videosearch train frame-encoder | sft-data | sft | grpo | ...`: the policy's vision stage, its training data from
the synthetic world, and stage-1 and stage-2 training."""

from __future__ import annotations

from pathlib import Path

import typer

from videosearch.config import given_paths, load_config
from videosearch.policy.policy import PolicyConfig
from videosearch.train.calibrate import calibrate_verdict
from videosearch.train.frame_encoder import FrameEncoderTrainConfig, train_frame_encoder
from videosearch.train.grpo import PLOT_FILE, GRPOConfig, train_grpo
from videosearch.train.recipe import run_recipe
from videosearch.train.refiner import RefinerTrainConfig, train_refiner
from videosearch.train.sft import SFTConfig, train_sft
from videosearch.train.sft_data import (
    build_world_refine_turns,
    build_world_sft_data,
    check_sft_output,
    write_sft_examples,
)

train_app = typer.Typer(help="Train the search policy: its frame encoder, SFT data, stage-1 SFT and stage-2 GRPO.",
                        no_args_is_help=True)
OVERRIDE_HELP = "key=value, repeatable (e.g. -o epochs=2)."


@train_app.command("frame-encoder")
def frame_encoder_command(
    config: Path = typer.Option(None, "--config", help="YAML preset (its `frame_encoder` section)."),
    world: Path = typer.Option(None, "--world", help="Synthetic world folder (`videosearch world generate`)."),
    out: Path = typer.Option(None, "--out", help="Where the encoder goes: a new or empty folder, or an earlier "
                             "output of this command (replaced)."),
    override: list[str] = typer.Option([], "--override", "-o", help=OVERRIDE_HELP),
) -> None:
    """The policy's own vision: a frame encoder trained on the world's specs (who is where, doing what)."""
    folder = train_frame_encoder(load_config(FrameEncoderTrainConfig, config, "frame_encoder", override,
                                             **given_paths(world=world, out=out)))
    typer.echo(f"frame encoder saved to {folder}")


@train_app.command("sft-data")
def sft_data_command(
    world: Path = typer.Option(..., "--world", help="Synthetic world folder (`videosearch world generate`)."),
    index: Path = typer.Option(..., "--index", help="Index over the split's videos (`videosearch index build`)."),
    out: Path = typer.Option(..., "--out", help="SFT examples to write (JSONL): a new file or one this wrote."),
    split: str = typer.Option("train", "--split", help="World split whose queries and videos are used."),
    seed: int = typer.Option(0, "--seed", help="Balancing, HQR choice and order are deterministic from this seed."),
    hqr_fraction: float = typer.Option(0.25, "--hqr-fraction", help="Share of examples with a rewritten query."),
    max_examples: int | None = typer.Option(None, "--max-examples", help="Keep at most N balanced examples."),
    family_negatives: float = typer.Option(0.0, "--family-negatives", help="Share of not-matched turns that show "
                                           "the highest-ranked video of the ground truth's family (one thing "
                                           "changed) instead of the top-ranked wrong video."),
    frame_encoder: Path = typer.Option(None, "--frame-encoder", help="The policy's frame encoder (`train "
                                       "frame-encoder`): the reasoning then quotes its event log of each video."),
    refine_turns: int = typer.Option(0, "--refine-turns", help="Write the SQR-head stage's turns instead: the "
                                     "not-matched turns of the first N wrong videos of each missed query."),
) -> None:
    """One verification turn per example, balanced 50/50 matched / not matched (or, with --refine-turns, the turns
    after which an episode refines)."""
    check_sft_output(out)  # before the work: never replace a file that is not ours
    reader = PolicyConfig(frame_encoder=str(frame_encoder)) if frame_encoder is not None else None
    if refine_turns:
        turns = build_world_refine_turns(world, index, split, turns=refine_turns, seed=seed,
                                         max_examples=max_examples, reader=reader)
        write_sft_examples(out, turns)
        later = sum(bool(t.seen) for t in turns)
        typer.echo(f"wrote {len(turns)} not-matched SQR turns to {out}: {len(turns) - later} first turns, "
                   f"{later} later ones")
        return
    examples, stats = build_world_sft_data(world, index, split, seed=seed, hqr_fraction=hqr_fraction,
                                           max_examples=max_examples, family_negatives=family_negatives,
                                           reader=reader)
    write_sft_examples(out, examples)
    typer.echo(f"wrote {len(examples)} examples to {out}: {stats.matched} matched, {stats.not_matched} not matched, "
               f"{stats.hqr} hqr, {stats.family_negatives} of the ground truth's family ({stats.queries} queries, "
               f"top-1 right for {stats.top1_correct}, "
               f"{stats.disagreements} disagreements)")


@train_app.command("sft")
def sft_command(
    config: Path = typer.Option(None, "--config", help="YAML preset (its `sft` section), e.g. configs/mini.yaml."),
    data: Path = typer.Option(None, "--data", help="SFT examples (`videosearch train sft-data`)."),
    index: Path = typer.Option(None, "--index", help="Index over the videos the examples show."),
    out: Path = typer.Option(None, "--out", help="Checkpoints go to OUT/last (resumable) and OUT/final; a new or "
                             "empty folder, or an earlier run's (resumed)."),
    override: list[str] = typer.Option([], "--override", "-o", help=OVERRIDE_HELP),
) -> None:
    """Cross-entropy on the assistant text + InfoNCE on the refined query; resumes from OUT/last."""
    final = train_sft(load_config(SFTConfig, config, "sft", override, **given_paths(data=data, index=index, out=out)))
    typer.echo(f"policy saved to {final}")


@train_app.command("grpo")
def grpo_command(
    config: Path = typer.Option(None, "--config", help="YAML preset (its `grpo` section), e.g. configs/mini.yaml."),
    policy: Path = typer.Option(None, "--policy", help="The calibrated SFT checkpoint to start from (and stay near)."),
    index: Path = typer.Option(None, "--index", help="Index over the training videos."),
    annotations: Path = typer.Option(None, "--annotations", help="Training queries, e.g. runs/world/train.jsonl."),
    out: Path = typer.Option(None, "--out", help="Checkpoints go to OUT/last (resumable) and OUT/final, the log to "
                             "OUT/log.jsonl and its plot to OUT/rewards.png; a new or empty folder, or an earlier "
                             "run's (resumed)."),
    override: list[str] = typer.Option([], "--override", "-o", help=OVERRIDE_HELP),
) -> None:
    """Stage 2: GRPO on sampled episodes (rewards, KL to the SFT policy); resumes from OUT/last."""
    final = train_grpo(load_config(GRPOConfig, config, "grpo", override,
                                   **given_paths(policy=policy, index=index, annotations=annotations, out=out)))
    typer.echo(f"policy saved to {final}; rewards plotted in {final.parent / PLOT_FILE}")


@train_app.command("calibrate")
def calibrate_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Policy checkpoint to calibrate (its policy.json is "
                                    "rewritten with the threshold)."),
    index: Path = typer.Option(..., "--index", help="Index over held-out videos (the world's val split)."),
    annotations: Path = typer.Option(..., "--annotations", help="Their queries, e.g. runs/world/val.jsonl."),
) -> None:
    """Choose the verdict's threshold on P(matched) for the best balanced accuracy on held-out queries."""
    result = calibrate_verdict(checkpoint, index, annotations)
    typer.echo(f"verdict threshold {result.threshold:.3f}: balanced accuracy {result.balanced_accuracy:.1f} % "
               f"(at 0.5: {result.balanced_accuracy_at_half:.1f} %) on {result.positives} matching and "
               f"{result.negatives} wrong videos; saved in {checkpoint}")


@train_app.command("all")
def all_command(
    config: Path = typer.Option(Path("configs/mini.yaml"), "--config", help="YAML preset with a `recipe` section."),
    override: list[str] = typer.Option([], "--override", "-o", help="section.key=value, repeatable (e.g. -o "
                                       "sft.epochs=2 -o recipe.runs=runs2)."),
) -> None:
    """The whole recipe from nothing; stages already complete are skipped, so a killed run resumes."""
    times = run_recipe(config, override)
    for name, seconds in times.items():
        typer.echo(f"{name:<14} {seconds / 60:6.1f} min")
    typer.echo(f"{'total':<14} {sum(times.values()) / 60:6.1f} min")


@train_app.command("refiner")
def refiner_command(
    checkpoint: Path = typer.Option(None, "--checkpoint", help="SFT policy checkpoint whose SQR head is trained."),
    data: Path = typer.Option(None, "--data", help="SFT examples (`videosearch train sft-data`)."),
    index: Path = typer.Option(None, "--index", help="Index over the videos the examples show."),
    out: Path = typer.Option(None, "--out", help="The new checkpoint: a new or empty folder, or an earlier output of "
                             "this command (replaced)."),
    config: Path = typer.Option(None, "--config", help="YAML preset (its `refiner` section)."),
    override: list[str] = typer.Option([], "--override", "-o", help=OVERRIDE_HELP),
) -> None:
    """Train only the SQR head on a frozen, SFT-trained policy: each turn prefilled once, then many InfoNCE passes;
    the epoch best on held-out turns is kept."""
    folder = train_refiner(load_config(RefinerTrainConfig, config, "refiner", override,
                                       **given_paths(checkpoint=checkpoint, data=data, index=index, out=out)))
    typer.echo(f"policy with the trained SQR head saved to {folder}")
