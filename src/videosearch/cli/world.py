"""`videosearch world generate`: write the synthetic world (mp4 videos + VERIFIED-format annotations)."""

from __future__ import annotations

from pathlib import Path

import typer

from videosearch.corpus.world import WorldConfig, generate_world

world_app = typer.Typer(help="The synthetic world: a generated benchmark of near-duplicate videos.",
                        no_args_is_help=True)


@world_app.command("generate")
def generate_command(
    out: Path = typer.Option(..., "--out", help="Output folder (reused when it already holds this world)."),
    seed: int = typer.Option(0, "--seed", help="Everything is deterministic from this seed."),
    size: str = typer.Option("default", "--size", help="'default' (the benchmark) or 'small' (seconds, for tests)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Processes that render and encode videos."),
    splits: str = typer.Option("train,val,test", "--splits", help="Comma-separated splits to write (e.g. test): "
                               "the same files as in the whole world."),
) -> None:
    """Generate train/val/test splits with disjoint videos."""
    chosen = tuple(part.strip() for part in splits.split(",") if part.strip())
    folder = generate_world(out, seed, WorldConfig.preset(size), workers, chosen)
    typer.echo(f"world written to {folder}")
