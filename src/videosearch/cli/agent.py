"""`videosearch agent run`: episodes of the search agent over an index, written as a resumable predictions file."""

from __future__ import annotations

from pathlib import Path

import typer

from videosearch.agent import Agent, AgentConfig
from videosearch.agent.runs import resumable_predictions, write_episodes
from videosearch.corpus.annotations import read_moments
from videosearch.engine import SearchEngine
from videosearch.errors import ConfigError
from videosearch.policy.policy import Policy
from videosearch.policy.release import is_release_checkpoint, load_release_policy
from videosearch.shipped import shipped_policy

agent_app = typer.Typer(help="Run the search agent: verify, refine, ground.", no_args_is_help=True)

DEFAULTS: dict[str, object] = {"judge": "policy", "refine": "sqr", "max_turns": 3}
MODES: dict[str, dict[str, object]] = {"oneshot": {"max_turns": 1}, "hqr": {"refine": "hqr"}, "sqr": {"refine": "sqr"}}
FLAGS = {"judge": "--judge", "refine": "--refine", "max_turns": "--max-turns"}


def resolve_settings(mode: str | None, given: dict[str, object | None]) -> dict[str, object]:
    """judge / refine / max_turns from the flags given (None = not given), `--mode` and the defaults."""
    settings = {name: value for name, value in given.items() if value is not None}
    if mode is not None:
        if mode not in MODES:
            raise ConfigError(f"unknown --mode {mode!r}; choose one of {', '.join(MODES)} (or use --judge, --refine "
                              "and --max-turns)")
        for name, value in MODES[mode].items():
            if settings.get(name, value) != value:
                raise ConfigError(f"--mode {mode} means {FLAGS[name]} {value}, but {FLAGS[name]} {settings[name]} "
                                  "was given: drop one of them")
            settings[name] = value
    return {**DEFAULTS, **settings}


@agent_app.command("run")
def run_command(
    index: Path = typer.Argument(..., help="Index folder (`videosearch index build`)."),
    annotations: Path = typer.Option(..., "--annotations", help="Queries (world jsonl, VERIFIED jsonl, ...)."),
    out: Path = typer.Option(..., "--out", help="Predictions file (JSONL); an existing one of the same settings is "
                             "resumed, a file of anything else refused."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Policy checkpoint (`videosearch train sft`, or a "
                                    "reference release's checkpoint folder); default: the shipped "
                                    "checkpoints/mini/policy."),
    judge: str = typer.Option(None, "--judge", help="Who decides matched: policy (default) | oracle (the ground "
                              "truth; spans stay the policy's)."),
    refine: str = typer.Option(None, "--refine", help="After a rejection: none (walk down the ranking) | hqr (text "
                               "rewrite) | sqr (latents, default) | oracle (latents optimised against the truth)."),
    max_turns: int = typer.Option(None, "--max-turns", help="Turn limit per episode (default 3; 1 = one-shot)."),
    mode: str = typer.Option(None, "--mode", help="Shorthand: oneshot (= --max-turns 1) | hqr (= --refine hqr) | "
                             "sqr (= --refine sqr)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Episodes run together."),
    exclude_judged: bool = typer.Option(True, "--exclude-judged/--no-exclude-judged",
                                        help="Never show a video twice in one episode."),
    query_field: str = typer.Option("fig_desc", "--query-field", help="Annotation field that holds the query."),
) -> None:
    """Write one prediction per query; rerunning after an interruption skips the queries already written."""
    settings = resolve_settings(mode, {"judge": judge, "refine": refine, "max_turns": max_turns})
    config = AgentConfig(**settings, exclude_judged=exclude_judged, batch_size=batch_size)  # type: ignore[arg-type]
    checkpoint = checkpoint or shipped_policy()
    moments = read_moments(annotations, query_field=query_field).moments
    done = resumable_predictions(out, moments, config.settings, source=annotations)
    engine = SearchEngine.load(index)
    policy = (load_release_policy(checkpoint, engine.embedder)[0] if is_release_checkpoint(checkpoint)
              else Policy.load(checkpoint, engine.embedder))
    agent = Agent(engine, policy, config)
    label = f"agent ({config.judge} judge, {config.refine} refine, {config.max_turns} turns)"
    written = write_episodes(agent, moments, out, done, label)
    typer.echo(f"wrote {written} predictions to {out} ({len(done)} were already there)")
