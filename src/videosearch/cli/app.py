"""The `videosearch` command: parses arguments and calls library functions, nothing more."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console
from rich.markup import escape
from transformers.utils import logging as hf_logging

from videosearch.cli.agent import agent_app
from videosearch.cli.baseline import baseline_app
from videosearch.cli.eval import eval_command
from videosearch.cli.experiment import experiment_app
from videosearch.cli.index import index_app, search_command, serve_command
from videosearch.cli.retriever import retriever_app
from videosearch.cli.train import train_app
from videosearch.cli.world import world_app
from videosearch.errors import VideosearchError

app = typer.Typer(help="Find the right moment in a large collection of videos from a sentence.", no_args_is_help=True)
app.add_typer(world_app, name="world")
app.add_typer(retriever_app, name="retriever")
app.add_typer(index_app, name="index")
app.command("search")(search_command)
app.command("serve")(serve_command)
app.command("eval")(eval_command)
app.add_typer(baseline_app, name="baseline")
app.add_typer(agent_app, name="agent")
app.add_typer(train_app, name="train")
app.add_typer(experiment_app, name="experiment")

err_console = Console(stderr=True)


def main() -> None:
    """Console entry point: user errors print one line and exit 2, never a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hf_logging.disable_progress_bar()  # weight-loading bars on every command are noise
    try:
        app(standalone_mode=False)
    except VideosearchError as exc:
        # Escaped: messages quote paths and spans ("[start, end]") that rich would read as markup.
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.TyperException as exc:  # usage errors (a missing option, a bad value) under standalone_mode=False
        if exc.format_message():  # empty when typer has already printed the help (no arguments given)
            err_console.print(f"[red]error:[/red] {escape(exc.format_message())}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
