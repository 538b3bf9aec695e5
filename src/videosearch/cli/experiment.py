"""`videosearch experiment claim`: the experiment that settles whether Soft Query Refinement does what it claims."""

from __future__ import annotations

from pathlib import Path

import typer

from videosearch.config import given_paths, load_config
from videosearch.eval.claim import PLOT_FILE, RESULT_FILE, TABLE_FILE, ClaimConfig, format_claim, run_claim

experiment_app = typer.Typer(help="Experiments that test the method's claims.", no_args_is_help=True)


@experiment_app.command("claim")
def claim_command(
    config: Path = typer.Option(None, "--config", help="YAML preset (its `claim` section), e.g. configs/mini.yaml."),
    index: Path = typer.Option(None, "--index", help="Index over the test split's videos."),
    annotations: Path = typer.Option(None, "--annotations", help="The test split's queries."),
    out: Path = typer.Option(None, "--out", help="Folder of the predictions (resumed), the table, JSON and plot."),
    override: list[str] = typer.Option([], "--override", "-o", help="key=value, repeatable (e.g. -o limit=50 "
                                       "-o policies.GRPO=runs/grpo/final)."),
) -> None:
    """Search alone, one-shot, the walk, HQR, SQR of each policy and the oracle-latent ceiling, at 1..max_turns
    turns, with bootstrap intervals and paired differences against one-shot and the walk."""
    cfg = load_config(ClaimConfig, config, "claim", override,
                      **given_paths(index=index, annotations=annotations, out=out))
    result = run_claim(cfg)
    typer.echo(format_claim(result))
    folder = Path(cfg.out)
    typer.echo(f"\n{folder / TABLE_FILE}, {folder / RESULT_FILE} and {folder / PLOT_FILE} written in "
               f"{result['seconds'] / 60:.1f} min")
