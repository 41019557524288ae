"""`searchgym` command line, the top of the data flow. One module per stage (`cli/<stage>.py`) adds its commands
through `register(app)`; heavy imports (torch, transformers) stay inside the command functions.

Errors: a command raises `searchgym.errors.SearchGymError` (or `InputError` for a bad flag); the root group prints
it as one line `error: <message>` and exits 2, the same for every command and whether run as `searchgym` or through
typer's CliRunner. An OSError (permission denied, no such file, disk full) is an environment problem and is shown
the same way. Anything else is a bug and keeps its traceback. SEARCHGYM_DEBUG=1 shows the traceback always.
"""

from __future__ import annotations

import importlib
import os
import re
import warnings
from typing import Any

import typer
from typer.core import TyperGroup

from searchgym.errors import SearchGymError

STAGES = ("world", "index", "tasks", "eval", "trac", "train", "view")
EXIT_USER_ERROR = 2


def quiet_library_warnings() -> None:
    """Deprecation notices of transformers / TRL / accelerate / peft are for developers; a CLI user would only see
    them printed before their own error."""
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings(
            "ignore", category=category, module=r"(transformers|trl|accelerate|peft)(\.|$)"
        )


def one_line(e: BaseException) -> str:
    """`error: <message>` with the message's line breaks folded (a library message may span several lines)."""
    return "error: " + re.sub(r"\s*\n\s*", " ", str(e).strip())


class _Root(TyperGroup):
    """The `searchgym` group: turns a user error raised anywhere below it into one line and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        quiet_library_warnings()
        if os.environ.get("SEARCHGYM_DEBUG"):
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except (SearchGymError, OSError) as e:
            typer.secho(one_line(e), fg=typer.colors.RED, err=True)
            raise typer.Exit(EXIT_USER_ERROR) from e


app = typer.Typer(
    cls=_Root,
    name="searchgym",
    help="Train LLM search agents with RL in a simulated, verifiable world.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


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
    """Run the CLI (the `searchgym` entry point)."""
    app()
