"""`searchgym index build` and `searchgym serve`."""

from __future__ import annotations

from pathlib import Path

import typer

index_app = typer.Typer(help="Search indexes inside world directories.", no_args_is_help=True)


@index_app.command("build")
def build(
    world: Path = typer.Argument(..., help="world directory (holds corpus.jsonl)"),
    backend: str = typer.Option(None, help="search backend: bm25s or tantivy (default: bm25s)"),
    overwrite: bool = typer.Option(False, help="rebuild even if the index matches the corpus"),
) -> None:
    """Build WORLD/index/<backend>/ from WORLD/corpus.jsonl."""
    from searchgym.index.build import build_index

    try:
        build_index(world, backend, overwrite=overwrite)
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


def serve(
    world: Path = typer.Argument(..., help="world directory with a built index"),
    host: str = typer.Option("127.0.0.1", help="address to bind; 0.0.0.0 exposes the service to the network"),
    port: int = typer.Option(8000, help="TCP port"),
    backend: str = typer.Option(None, help="search backend (default: bm25s)"),
) -> None:
    """Serve WORLD's index over HTTP (Search-R1 /retrieve, plus /access and /health)."""
    from searchgym.index.build import SearchIndexError
    from searchgym.index.server import serve as run

    try:
        run(world, host=host, port=port, backend=backend)
    except (SearchIndexError, FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main `searchgym` app."""
    app.add_typer(index_app, name="index")
    app.command("serve")(serve)
