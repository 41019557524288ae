"""`searchgym view PATH`: browse an eval, a training run or a demo in the browser (docs/view.md)."""

from __future__ import annotations

from pathlib import Path

import typer


def view(
    path: Path = typer.Argument(..., help="eval directory, training output_dir, or demo --out directory"),
    port: int = typer.Option(8765, help="port to listen on (0 = any free port)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (keep the loopback default)"),
    world: Path = typer.Option(None, help="world directory (default: found from the run)"),
    compare: Path = typer.Option(None, help="a second eval / run directory to compare PATH with"),
) -> None:
    """Serve a local trajectory viewer for PATH and print its URL (Ctrl-C stops it)."""
    from searchgym.view.server import bind, create_app, is_loopback, serve
    from searchgym.view.viewer import Viewer

    if not is_loopback(host):
        typer.echo(
            f"warning: serving on {host}: anyone who can reach it can read this run and its world", err=True
        )

    viewer = Viewer.open(path, world=world, compare=compare)
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    for r in viewer.runs.values():
        typer.echo(f"  {r.id}: {len(r.rows):,} episodes ({r.kind}, {r.path})")
    for note in viewer.notes:
        typer.echo(f"  note: {note}")
    typer.echo(f"SearchGym viewer on {url}  (Ctrl-C to stop)", err=False)
    serve(create_app(viewer, host), sock)


def register(app: typer.Typer) -> None:
    """Add `searchgym view`."""
    app.command("view")(view)
