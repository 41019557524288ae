"""`searchgym` command line. Each stage of the data flow owns its commands in `<stage>/cli.py`
and adds them here through `register(app)`; heavy imports (torch, transformers) stay inside commands."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="searchgym",
    help="Train LLM search agents with RL in a simulated, verifiable world.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

STAGES = ("world", "index", "tasks", "eval", "advantage", "trainer")


@app.callback()
def _root() -> None:
    """Train LLM search agents with RL in a simulated, verifiable world."""


@app.command()
def version() -> None:
    """Print the SearchGym version."""
    from searchgym import __version__

    typer.echo(__version__)


for _stage in STAGES:
    importlib.import_module(f"searchgym.{_stage}.cli").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
