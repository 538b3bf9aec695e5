"""`videosearch retriever train | oracle-refine`: the mini retriever and the headroom of latent refinement."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from videosearch.config import load_config
from videosearch.corpus.annotations import read_moments
from videosearch.engine import SearchEngine
from videosearch.eval.oracle_refine import OracleConfig, oracle_refine
from videosearch.train.retriever import RetrieverTrainConfig, train_retriever

retriever_app = typer.Typer(help="Train the mini retriever; measure latent-refinement headroom.", no_args_is_help=True)
CONFIG_HELP = "YAML preset (its `retriever` section), e.g. configs/mini.yaml."
OVERRIDE_HELP = "key=value override, repeatable (e.g. -o epochs=3 -o video_tower.layers=1)."


@retriever_app.command("train")
def train_command(
    world: Path = typer.Option(None, "--world", help="Synthetic world folder (`videosearch world generate`)."),
    out: Path = typer.Option(None, "--out", help="Where to save the embedder: a new or empty folder, or an earlier "
                             "output of this command (replaced)."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    override: list[str] = typer.Option([], "--override", "-o", help=OVERRIDE_HELP),
) -> None:
    """Train the video tower contrastively into the frozen MiniLM text space."""
    cfg = load_config(RetrieverTrainConfig, config, "retriever", override,
                      world=str(world) if world else None, out=str(out) if out else None)
    train_retriever(cfg)
    typer.echo(f"embedder saved to {cfg.out}")


@retriever_app.command("oracle-refine")
def oracle_command(
    index: Path = typer.Argument(..., help="Index folder (`videosearch index build`)."),
    annotations: Path = typer.Option(..., "--annotations", help="Queries with their ground truth."),
    limit: int = typer.Option(200, "--limit", help="Use the first N queries (0 = all)."),
    steps: int = typer.Option(30, "--steps", help="Gradient steps per query."),
    n_latents: int = typer.Option(8, "--latents", help="Latent vectors inserted per query."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Optimise latents against the ground truth (an oracle) and report VR R@1 before and after."""
    cfg = OracleConfig(n_latents=n_latents, steps=steps, limit=limit)
    engine = SearchEngine.load(index)
    ids = engine.video_ids
    result = oracle_refine(engine.embedder, ids, engine.store.get_vectors(ids), read_moments(annotations).moments, cfg)
    if json_output:
        typer.echo(json.dumps(result))
        return
    table = Table(title=f"oracle latent refinement: {int(result['queries'])} queries, {int(result['corpus'])} videos")
    for column in ("query", "VR R@1", "VR R@10"):
        table.add_column(column)
    rows = (("plain", "original"), ("latents_init", "+ untrained latents"), ("oracle", "+ oracle latents"))
    for name, label in rows:
        table.add_row(label, f"{result[f'{name}_R@1']:.1f}", f"{result[f'{name}_R@10']:.1f}")
    Console().print(table)
