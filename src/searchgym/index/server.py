"""Search-R1-compatible retrieval service over any SearchEngine.

POST /retrieve {"queries": [str], "topk": int, "return_scores": bool}
    -> {"result": [[{"document": {"id", "contents", "url", "title"}, "score": float}, ...] per query]}
    With "return_scores": false each item is the bare document, as Search-R1's own server answers.
POST /access {"urls": [str]} -> {"result": [{"url", "found", "id", "title", "contents"}]}
GET /health -> {"status": "ok", "backend", "num_docs"}

Every request is validated by hand so a bad one gets a 4xx whose "detail" names the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from searchgym.config import YamlConfig
from searchgym.index.base import SearchEngine
from searchgym.types import SearchHit


@dataclass
class ServerConfig(YamlConfig):
    host: str = "127.0.0.1"  # only this machine unless told otherwise
    port: int = 8000
    backend: str | None = None  # None: the default backend (searchgym.index.build.DEFAULT_BACKEND)
    default_topk: int = 3  # Search-R1's default
    max_topk: int = 100
    max_queries: int = 1024  # per /retrieve request
    max_query_chars: int = 2000
    max_urls: int = 256  # per /access request
    max_url_chars: int = 2000
    max_body_bytes: int = 4_000_000


class BadRequest(Exception):
    def __init__(self, detail: str, status: int = 400):
        super().__init__(detail)
        self.detail, self.status = detail, status


def _document(hit: SearchHit) -> dict[str, Any]:
    return {"id": hit.doc_id, "contents": hit.contents, "url": hit.url, "title": hit.title}


async def _read_json(request: Request, cfg: ServerConfig) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cfg.max_body_bytes):
        raise BadRequest(f"request body larger than {cfg.max_body_bytes} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cfg.max_body_bytes:
            raise BadRequest(f"request body larger than {cfg.max_body_bytes} bytes", 413)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"body is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise BadRequest(f"body must be a JSON object, got {type(data).__name__}")
    return data


def _string_list(data: dict, key: str, limit: int, max_chars: int) -> list[str]:
    if key not in data:
        raise BadRequest(f'missing field "{key}" (a list of strings)', 422)
    items = data[key]
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise BadRequest(f'"{key}" must be a list of strings', 422)
    if not items:
        raise BadRequest(f'"{key}" is empty', 422)
    if len(items) > limit:
        raise BadRequest(f'"{key}" has {len(items)} items; at most {limit} per request', 422)
    for i, s in enumerate(items):
        if not s.strip():
            raise BadRequest(f'"{key}"[{i}] is empty', 422)
        if len(s) > max_chars:
            raise BadRequest(f'"{key}"[{i}] has {len(s)} characters; at most {max_chars}', 422)
    return items


def create_app(engine: SearchEngine, config: ServerConfig | None = None) -> FastAPI:
    cfg = config or ServerConfig()
    app = FastAPI(title="SearchGym retrieval", docs_url=None, redoc_url=None)

    @app.exception_handler(BadRequest)
    async def _bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "backend": engine.name, "num_docs": len(engine)}

    @app.post("/retrieve")
    async def retrieve(request: Request) -> JSONResponse:
        data = await _read_json(request, cfg)
        unknown = sorted(set(data) - {"queries", "topk", "return_scores"})
        if unknown:
            raise BadRequest(f"unknown field(s) {unknown}; expected queries, topk, return_scores", 422)
        queries = _string_list(data, "queries", cfg.max_queries, cfg.max_query_chars)
        topk = data.get("topk", cfg.default_topk)
        if not isinstance(topk, int) or isinstance(topk, bool) or not 1 <= topk <= cfg.max_topk:
            raise BadRequest(f'"topk" must be an integer from 1 to {cfg.max_topk}, got {topk!r}', 422)
        scores = data.get("return_scores", False)
        if not isinstance(scores, bool):
            raise BadRequest(f'"return_scores" must be true or false, got {scores!r}', 422)
        results = engine.batch_search(queries, topk)
        if scores:
            out = [[{"document": _document(h), "score": h.score} for h in hits] for hits in results]
        else:
            out = [[_document(h) for h in hits] for hits in results]
        return JSONResponse({"result": out})

    @app.post("/access")
    async def access(request: Request) -> JSONResponse:
        data = await _read_json(request, cfg)
        unknown = sorted(set(data) - {"urls"})
        if unknown:
            raise BadRequest(f"unknown field(s) {unknown}; expected urls", 422)
        out = []
        for url in _string_list(data, "urls", cfg.max_urls, cfg.max_url_chars):
            doc = engine.access(url)
            page = {"url": url, "found": doc is not None, "id": "", "title": "", "contents": ""}
            if doc is not None:
                page.update(id=doc.id, title=doc.title, contents=doc.contents)
            out.append(page)
        return JSONResponse({"result": out})

    return app


def serve(
    world_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str | None = None,
    config: ServerConfig | None = None,
    log_level: str = "warning",
) -> None:
    """Load WORLD's index and serve it until interrupted."""
    import uvicorn

    from searchgym.index.build import load_engine

    cfg = config or ServerConfig(host=host, port=port, backend=backend)
    engine = load_engine(world_dir, cfg.backend)
    uvicorn.run(create_app(engine, cfg), host=cfg.host, port=cfg.port, log_level=log_level, access_log=False)
