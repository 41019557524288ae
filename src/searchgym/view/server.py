"""The viewer's HTTP server: a JSON API over a `Viewer` plus the static front end shipped in the package.

Nothing a request names is ever used as a file path: the records files are fixed when the viewer opens, static
files are a fixed table (`STATIC`), runs and episodes are looked up by id and index, world pages by key in memory.
Every parameter is typed and bounded (422 otherwise), unknown ids give 404, the Host header must be the address the
server was started on (no DNS rebinding), only GET/HEAD exist. Handlers are plain functions, run in a thread pool,
so one slow request does not stall the others.
"""

from __future__ import annotations

import socket
from importlib import resources
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from searchgym.view.compare import STATUSES
from searchgym.view.query import SORT_KEYS, Filters
from searchgym.view.viewer import Viewer

STATIC = {  # URL name -> (file in searchgym/view/static, media type)
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "style.css": ("style.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
RUN_ID = r"^[a-z0-9_-]{1,64}$"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def _static(name: str) -> bytes:
    return (resources.files("searchgym.view") / "static" / name).read_bytes()


def create_app(viewer: Viewer, host: str = "127.0.0.1") -> FastAPI:
    app = FastAPI(title="SearchGym viewer", docs_url=None, redoc_url=None, openapi_url=None)
    if is_loopback(host):  # a page on a loopback port answers only to loopback names (no DNS rebinding)
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=sorted({host, *LOOPBACK}))
    pages = {"index.html": _static("index.html")} | {name: _static(f) for name, (f, _) in STATIC.items()}

    @app.middleware("http")
    async def headers(request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def lookup(fn, *args):
        try:
            return fn(*args)
        except KeyError as e:
            raise HTTPException(404, str(e.args[0]) if e.args else "not found") from e
        except ValueError as e:
            raise HTTPException(400, str(e)) from e

    @app.get("/")
    def index() -> Response:
        return Response(pages["index.html"], media_type="text/html; charset=utf-8")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "no such file")
        return Response(pages[name], media_type=STATIC[name][1])

    @app.get("/api/info")
    def info() -> dict:
        return viewer.info()

    @app.get("/api/runs/{run_id}/episodes")
    def episodes(
        run_id: Annotated[str, PathParam(pattern=RUN_ID)],
        type: Annotated[str, Query(max_length=64)] = "",
        hops: Annotated[int | None, Query(ge=0, le=1000)] = None,
        level: Annotated[int | None, Query(ge=0, le=1000)] = None,
        split: Annotated[str, Query(max_length=64)] = "",
        success: bool | None = None,
        reward_min: Annotated[float | None, Query(ge=-1e9, le=1e9)] = None,
        reward_max: Annotated[float | None, Query(ge=-1e9, le=1e9)] = None,
        invalid: bool | None = None,
        q: Annotated[str, Query(max_length=200)] = "",
        step: Annotated[int | None, Query(ge=0, le=10**9)] = None,
        group: Annotated[int | None, Query(ge=0, le=10**9)] = None,
        sort: Annotated[str, Query(pattern="^(" + "|".join(SORT_KEYS) + ")$")] = "i",
        desc: bool = False,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict:
        f = Filters(type, hops, level, split, success, reward_min, reward_max, invalid, q, step, group)
        return lookup(viewer.episodes, run_id, f, sort, desc, offset, limit)

    @app.get("/api/runs/{run_id}/episodes/{i}")
    def episode(
        run_id: Annotated[str, PathParam(pattern=RUN_ID)], i: Annotated[int, PathParam(ge=0, le=10**9)]
    ) -> dict:
        return lookup(viewer.episode, run_id, i)

    @app.get("/api/runs/{run_id}/tasks/{task_id}")
    def task_episodes(
        run_id: Annotated[str, PathParam(pattern=RUN_ID)], task_id: Annotated[str, PathParam(max_length=200)]
    ) -> dict:
        return {"run": run_id, "task_id": task_id, "episodes": lookup(viewer.task_episodes, run_id, task_id)}

    @app.get("/api/compare")
    def compare(
        a: Annotated[str, Query(pattern=RUN_ID)],
        b: Annotated[str, Query(pattern=RUN_ID)],
        status: Annotated[str, Query(pattern="^(|" + "|".join(STATUSES) + ")$")] = "",
        q: Annotated[str, Query(max_length=200)] = "",
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict:
        return lookup(viewer.compare, a, b, status, q, offset, limit)

    @app.get("/api/world/entity")
    def entity(key: Annotated[str, Query(min_length=1, max_length=1000)]) -> dict:
        return lookup(viewer.entity, key)

    @app.exception_handler(404)
    async def not_found(request, exc):
        detail = getattr(exc, "detail", None) or "not found"
        return JSONResponse({"detail": detail}, status_code=404, headers=SECURITY_HEADERS)

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 = any free port); a taken port is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port} ({e.strerror}); pass another --port (0 = any free)"
        ) from e
    sock.listen(128)
    return sock


def serve(app: FastAPI, sock: socket.socket) -> None:
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=5, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
