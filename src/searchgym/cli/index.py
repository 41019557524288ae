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
    config: Path = typer.Option(None, help="ServerConfig YAML; the flags below override it"),
    host: str = typer.Option(
        None, help="address to bind (default 127.0.0.1); 0.0.0.0 exposes it to the network"
    ),
    port: int = typer.Option(None, help="TCP port (default 8000); 0 picks a free one, the URL is printed"),
    backend: str = typer.Option(None, help="search backend (default: bm25s)"),
    workers: int = typer.Option(
        None, help="server processes, each loading its own copy of the index (default 1)"
    ),
    default_topk: int = typer.Option(None, help="topk for a request without one (default 3)"),
    max_topk: int = typer.Option(None, help="a larger topk is lowered to this (default 100)"),
    max_queries: int = typer.Option(None, help="queries per /retrieve request; more: 413 (default 16384)"),
    max_results: int = typer.Option(
        None, help="queries x topk per request; topk is lowered to fit (default 32768)"
    ),
    max_query_chars: int = typer.Option(None, help="longer queries are cut (default 2000)"),
    max_query_words: int = typer.Option(None, help="words past this are dropped (default 32)"),
    max_urls: int = typer.Option(None, help="URLs per /access request; more: 413 (default 1024)"),
    max_body_bytes: int = typer.Option(None, help="larger request bodies: 413 (default 32 MiB)"),
    max_reply_bytes: int = typer.Option(None, help="larger replies: 413 (default 64 MiB)"),
    body_timeout: float = typer.Option(
        None, help="seconds to receive a body after its headers; then 408 (default 30)"
    ),
    header_timeout: float = typer.Option(
        None, help="seconds to receive a request's headers; then 408 (default 10)"
    ),
    addr_file: Path = typer.Option(
        None, help="write ASearcher's discovery file DIR/Host<ip>_IP<port>.txt (its $RAG_SERVER_ADDR_DIR)"
    ),
    log_level: str = typer.Option("warning", help="uvicorn log level"),
) -> None:
    """Serve WORLD's index over HTTP (Search-R1 /retrieve, plus /access and /health)."""
    from searchgym.config import ConfigError
    from searchgym.index.build import SearchIndexError
    from searchgym.index.server import ServerConfig
    from searchgym.index.server import serve as run

    flags = dict(
        host=host,
        port=port,
        backend=backend,
        workers=workers,
        default_topk=default_topk,
        max_topk=max_topk,
        max_queries=max_queries,
        max_results=max_results,
        max_query_chars=max_query_chars,
        max_query_words=max_query_words,
        max_urls=max_urls,
        max_body_bytes=max_body_bytes,
        max_reply_bytes=max_reply_bytes,
        body_timeout=body_timeout,
        header_timeout=header_timeout,
    )
    try:
        if config is not None and not config.is_file():
            raise ConfigError(f"--config {config} is not a file")
        cfg = ServerConfig.from_yaml(config) if config is not None else ServerConfig()
        cfg = ServerConfig.from_dict({**cfg.to_dict(), **{k: v for k, v in flags.items() if v is not None}})
        cfg.check()
        run(world, cfg, addr_dir=addr_file, log_level=log_level, announce=typer.echo)
    except (ConfigError, SearchIndexError, OSError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main `searchgym` app."""
    app.add_typer(index_app, name="index")
    app.command("serve")(serve)
