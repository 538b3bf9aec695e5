"""`videosearch agent run`: episodes of the search agent over an index, written as a resumable predictions file."""

from __future__ import annotations

from pathlib import Path

import typer

from videosearch.agent import Agent, AgentConfig
from videosearch.corpus.annotations import read_moments
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.eval.predictions import append_prediction, existing_predictions, write_predictions
from videosearch.policy.policy import Policy
from videosearch.progress import progress

agent_app = typer.Typer(help="Run the search agent: verify, refine, ground.", no_args_is_help=True)


@agent_app.command("run")
def run_command(
    index: Path = typer.Argument(..., help="Index folder (`videosearch index build`)."),
    annotations: Path = typer.Option(..., "--annotations", help="Queries (world jsonl, VERIFIED jsonl, ...)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Policy checkpoint (`videosearch train sft`)."),
    out: Path = typer.Option(..., "--out", help="Predictions file (JSONL); an existing one is resumed, "
                              "a file of anything else refused."),
    mode: str = typer.Option("sqr", "--mode", help="oneshot | hqr | sqr."),
    max_turns: int = typer.Option(3, "--max-turns", help="Turn limit per episode."),
    batch_size: int = typer.Option(16, "--batch-size", help="Episodes run together."),
    exclude_judged: bool = typer.Option(True, "--exclude-judged/--no-exclude-judged",
                                        help="Never show a video twice in one episode."),
    query_field: str = typer.Option("fig_desc", "--query-field", help="Annotation field that holds the query."),
) -> None:
    """Write one prediction per query; rerunning after an interruption skips the queries already written."""
    config = AgentConfig(mode=mode, max_turns=max_turns, exclude_judged=exclude_judged, batch_size=batch_size)
    moments = read_moments(annotations, query_field=query_field).moments
    done = existing_predictions(out)
    other = sorted({str(p.extra.get("mode")) for p in done} - {mode})
    if other:
        raise ConfigError(f"{out} holds {other[0]} predictions; write {mode} predictions to another file")
    unknown = {p.qid for p in done} - {m.qid for m in moments}
    if unknown:
        raise ConfigError(f"{out} holds queries that are not in {annotations} (e.g. {sorted(unknown)[0]!r})")
    finished = {p.qid for p in done}
    todo = [m for m in moments if m.qid not in finished]
    engine = SearchEngine.load(index)
    agent = Agent(engine, Policy.load(checkpoint, engine.embedder), config)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_predictions(out, done)  # drops a line an interruption cut short
    with out.open("a", encoding="utf-8") as fh, progress() as bar:
        task = bar.add_task(f"agent ({mode})", total=len(moments), completed=len(done))
        # whole batches as an uninterrupted run forms them, so a resumed run writes the same predictions
        for start in range(0, len(moments), batch_size):
            batch = moments[start: start + batch_size]
            if all(m.qid in finished for m in batch):
                continue
            for prediction in agent.run_batch(batch):
                if prediction.qid not in finished:
                    append_prediction(fh, prediction)
                    bar.advance(task)
    typer.echo(f"wrote {len(todo)} predictions to {out} ({len(done)} were already there)")

