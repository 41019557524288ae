"""`searchgym` command line, the top of the data flow. One module per stage (`cli/<stage>.py`) adds its commands
through `register(app)`; heavy imports (torch, transformers) stay inside the command functions."""

from __future__ import annotations

import importlib
import os
import sys

import typer

app = typer.Typer(
    name="searchgym",
    help="Train LLM search agents with RL in a simulated, verifiable world.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

STAGES = ("world", "index", "tasks", "eval", "trac", "train", "view")


@app.callback()
def _root() -> None:
    """Train LLM search agents with RL in a simulated, verifiable world."""


@app.command()
def version() -> None:
    """Print the SearchGym version."""
    from searchgym import __version__

    typer.echo(__version__)


for _stage in STAGES:
    importlib.import_module(f"searchgym.cli.{_stage}").register(app)


def main() -> None:
    """Run the CLI; user errors (bad config, damaged world, missing index, …) print one clear line, exit 2.

    Set SEARCHGYM_DEBUG=1 to see the full traceback instead.
    """
    if os.environ.get("SEARCHGYM_DEBUG"):
        app()
        return
    try:
        app()
    except (ValueError, OSError, KeyError) as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
