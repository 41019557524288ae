"""Search-R1-compatible retrieval service over any SearchEngine (`searchgym serve`).

POST /retrieve {"queries": [str], "topk": int, "return_scores": bool}
    -> {"result": [[{"document": {"id", "contents", "url", "title"}, "score": float}, ...] per query]}
    With "return_scores": false each item is the bare document, as Search-R1's and ASearcher's servers answer.
POST /access {"urls": [str]} -> {"result": [{"url", "found", "id", "title", "contents"}]}
GET /health -> {"status": "ok", "backend", "num_docs", "in_flight", "pid", "limits"}

Search-R1's loop reads `.json()["result"]` without checking the status, so everything a training client can send
is answered 200: no queries, blank queries, over-long queries (cut), missing/null/0 `topk` (the default), unknown
fields (ignored). 4xx is kept for bodies that are not JSON or have the wrong types, and for limits on the size of
one request; the `detail` names the problem and the limit. Search runs on one worker thread in chunks of
`chunk_queries`, so the event loop (and /health) keeps answering and a small request waits for one chunk of a big
one at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from searchgym.config import ConfigError, YamlConfig
from searchgym.index.base import SearchEngine
from searchgym.io import atomic_write_text
from searchgym.types import SearchHit

WORKER_ENV = "SEARCHGYM_SERVE"  # world and config handed to `--workers` processes


@dataclass
class ServerConfig(YamlConfig):
    host: str = "127.0.0.1"  # only this machine unless told otherwise
    port: int = 8000  # 0: any free port (the bound URL is printed)
    backend: str | None = None  # None: the default backend (searchgym.index.build.DEFAULT_BACKEND)
    workers: int = 1  # processes, each with its own copy of the index
    default_topk: int = 3  # Search-R1's; used for a missing, null or 0 topk
    max_topk: int = 100  # a larger topk is lowered to this
    max_queries: int = 16384  # per /retrieve request (Search-R1's default step sends 2,560); more: 413
    max_results: int = 32_768  # queries x topk per request; topk is lowered so the product fits (~1 KB a hit)
    max_query_chars: int = 2000  # longer queries are cut (ASearcher's own web client cuts at 2,000)
    max_query_words: int = 32  # words after the 32nd are dropped, as web search engines do
    max_urls: int = 1024  # per /access request; more: 413
    max_url_chars: int = 2000  # a longer URL is answered as not found
    max_body_bytes: int = 32 * 2**20  # 16,384 queries of 2,000 characters fit; larger: 413
    max_reply_bytes: int = 64 * 2**20  # a reply that would be larger: 413
    chunk_queries: int = 32  # queries per search job on the worker thread
    body_timeout: float = 30.0  # seconds to receive a request body after its headers; then 408
    header_timeout: float = 10.0  # seconds to receive a request's headers; then 408 and the connection closes
    keep_alive_timeout: int = 5  # idle seconds before a kept-alive connection closes (uvicorn's default)

    def check(self) -> None:
        """Raise ConfigError naming the first unusable value."""
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range 0..65535")
        positive = (
            "workers default_topk max_topk max_queries max_results max_query_chars max_query_words max_urls "
            "max_url_chars max_body_bytes max_reply_bytes chunk_queries body_timeout header_timeout"
        )
        for name in positive.split():
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.default_topk > self.max_topk:
            raise ConfigError(f"default_topk {self.default_topk} is above max_topk {self.max_topk}")
        if self.max_results < self.max_queries:
            raise ConfigError(
                f"max_results {self.max_results} must be at least max_queries {self.max_queries}"
            )

    def limits(self) -> dict[str, int]:
        names = "max_topk max_queries max_results max_query_chars max_query_words max_urls max_reply_bytes"
        return {n: getattr(self, n) for n in names.split()}


class BadRequest(Exception):
    def __init__(self, detail: str, status: int = 400):
        super().__init__(detail)
        self.detail, self.status = detail, status


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- request parsing ---------------------------------------------------------------------------------------
async def _read_json(request: Request, cfg: ServerConfig) -> dict[str, Any]:
    too_big = f"request body larger than {cfg.max_body_bytes} bytes (max_body_bytes, --max-body-bytes)"
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cfg.max_body_bytes):
        raise BadRequest(too_big, 413)
    body = bytearray()
    try:
        async with asyncio.timeout(cfg.body_timeout):  # a client trickling its body must not hold the server
            async for chunk in request.stream():
                body += chunk
                if len(body) > cfg.max_body_bytes:
                    raise BadRequest(too_big, 413)
    except TimeoutError as e:
        raise BadRequest(
            f"request body not received within {cfg.body_timeout:g} s (--body-timeout)", 408
        ) from e
    try:  # big bodies are parsed off the event loop
        data = json.loads(body) if len(body) < 2**20 else await asyncio.to_thread(json.loads, bytes(body))
    except RecursionError as e:
        raise BadRequest("body is not valid JSON: nested too deeply") from e
    except (ValueError, UnicodeDecodeError) as e:  # includes numbers over Python's 4,300-digit limit
        raise BadRequest(f"body is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise BadRequest(f"body must be a JSON object, got {type(data).__name__}")
    return data


def _list_field(data: dict, key: str, limit: int, flag: str) -> list:
    if data.get(key) is None:
        raise BadRequest(f'missing field "{key}" (a list of strings)', 422)
    items = data[key]
    if not isinstance(items, list):
        raise BadRequest(f'"{key}" must be a list of strings, got {type(items).__name__}', 422)
    if len(items) > limit:
        raise BadRequest(f'"{key}" has {len(items)} items; at most {limit} per request ({flag})', 413)
    return items


def query_text(item: Any, cfg: ServerConfig) -> str:
    """What is searched for one entry of "queries": cut to the limits; "" (no hits) for null, lists, objects.

    Numbers are searched as their text; a lone surrogate (a JSON escape like "\\ud800") becomes "?".
    """
    if isinstance(item, bool) or item is None:
        return ""
    if isinstance(item, int | float):
        item = str(item)
    if not isinstance(item, str):
        return ""
    words = item[: cfg.max_query_chars].split()
    return " ".join(words[: cfg.max_query_words]).encode("utf-8", "replace").decode("utf-8")


def _topk(value: Any, cfg: ServerConfig) -> int:
    """Search-R1 answers a falsy topk with its default; pydantic (its request model) also takes "3" and 3.0."""
    if isinstance(value, str) and value.strip().isdigit() and len(value) < 20:
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None or value == 0:
        return cfg.default_topk
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f'"topk" must be a positive integer, got {_short(value)}', 422)
    if value < 0:
        raise BadRequest(f'"topk" must be a positive integer, got {value}', 422)
    return min(value, cfg.max_topk)


_BOOLS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


def _flag(value: Any, key: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _BOOLS:
        return _BOOLS[value.lower()]
    raise BadRequest(f'"{key}" must be true or false, got {_short(value)}', 422)


# ---- answering ---------------------------------------------------------------------------------------------
class DocumentJSON:
    """Each returned document's JSON `{"id", "contents", "url", "title"}`, encoded once: documents never change,
    and popular ones come back in many replies. Used only on the search thread; holds at most `cap_bytes`
    (then starts over), so the memory a burst of replies leaves behind is bounded."""

    def __init__(self, cap_bytes: int = 32 * 2**20):
        self.cap_bytes, self.size, self.cache = cap_bytes, 0, {}

    def __call__(self, hit: SearchHit) -> bytes:
        encoded = self.cache.get(hit.doc_id)
        if encoded is None:
            doc = {"id": hit.doc_id, "contents": hit.contents, "url": hit.url, "title": hit.title}
            encoded = json.dumps(doc, ensure_ascii=False).encode("utf-8")
            if self.size + len(encoded) > self.cap_bytes:
                self.cache.clear()
                self.size = 0
            self.cache[hit.doc_id] = encoded
            self.size += len(encoded)
        return encoded


def search_chunk(
    engine: SearchEngine, document: DocumentJSON, texts: list[str], k: int, scores: bool
) -> bytes:
    """Runs on the search thread: search the non-blank queries of one chunk and render their result lists as
    JSON, comma-separated, ready to join with the other chunks'."""
    asked = [t for t in texts if t]
    found = iter(engine.batch_search(asked, k) if asked else [])
    lists = []
    for text in texts:
        hits = next(found) if text else []
        if scores:  # repr(float) is what json.dumps writes for a float
            items = [
                b'{"document":%b,"score":%b}' % (document(h), repr(float(h.score)).encode()) for h in hits
            ]
        else:
            items = [document(h) for h in hits]
        lists.append(b"[" + b",".join(items) + b"]")
    return b",".join(lists)


def _access_all(engine: SearchEngine, urls: list[str], cfg: ServerConfig) -> bytes:
    out = []
    for url in urls:
        doc = engine.access(url) if len(url) <= cfg.max_url_chars else None
        page = {"url": url, "found": doc is not None, "id": "", "title": "", "contents": ""}
        if doc is not None:
            page.update(id=doc.id, title=doc.title, contents=doc.contents)
        out.append(page)
    return json.dumps({"result": out}, ensure_ascii=False).encode("utf-8")


def create_app(engine: SearchEngine, config: ServerConfig | None = None) -> Starlette:
    cfg = config or ServerConfig()
    cfg.check()
    pool = ThreadPoolExecutor(1, thread_name_prefix="search")  # one thread: the engine is never shared
    document = DocumentJSON()
    state = {"in_flight": 0}

    async def on_search_thread(fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def health(_: Request) -> Response:  # answered on the event loop, never behind a search
        return JSONResponse(
            {
                "status": "ok",
                "backend": engine.name,
                "num_docs": len(engine),
                "in_flight": state["in_flight"],
                "pid": os.getpid(),
                "limits": cfg.limits(),
            }
        )

    async def retrieve(request: Request) -> Response:
        data = await _read_json(request, cfg)
        queries = _list_field(data, "queries", cfg.max_queries, "--max-queries")
        k = _topk(data.get("topk"), cfg)
        scores = _flag(data.get("return_scores"), "return_scores")
        if queries:
            k = min(k, max(1, cfg.max_results // len(queries)))
        texts = [query_text(q, cfg) for q in queries]
        parts: list[bytes] = []
        size = 0
        state["in_flight"] += 1
        try:
            for start in range(0, len(texts), cfg.chunk_queries):
                if start and await request.is_disconnected():
                    return Response(status_code=499)  # nobody is waiting for the rest
                texts_chunk = texts[start : start + cfg.chunk_queries]
                chunk = await on_search_thread(search_chunk, engine, document, texts_chunk, k, scores)
                parts.append(chunk)
                size += len(chunk) + 1
                if size > cfg.max_reply_bytes:
                    raise BadRequest(
                        f"reply larger than {cfg.max_reply_bytes} bytes (max_reply_bytes, --max-reply-bytes); "
                        f"send fewer queries per request or a smaller topk",
                        413,
                    )
        finally:
            state["in_flight"] -= 1
        body = b'{"result":[' + b",".join(parts) + b"]}"
        return Response(body, media_type="application/json", headers={"x-searchgym-topk": str(k)})

    async def access(request: Request) -> Response:
        data = await _read_json(request, cfg)
        urls = _list_field(data, "urls", cfg.max_urls, "--max-urls")
        for i, url in enumerate(urls):
            if not isinstance(url, str):
                raise BadRequest(f'"urls"[{i}] must be a string, got {_short(url)}', 422)
            try:
                url.encode("utf-8")
            except UnicodeEncodeError as e:
                raise BadRequest(
                    f'"urls"[{i}] is not valid Unicode (lone surrogate at {e.start})', 422
                ) from e
        state["in_flight"] += 1
        try:
            body = await on_search_thread(_access_all, engine, urls, cfg)
        finally:
            state["in_flight"] -= 1
        return Response(body, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/retrieve", retrieve, methods=["POST"]),
        Route("/access", access, methods=["POST"]),
    ]
    handlers = {BadRequest: _bad_request, HTTPException: _http_error, Exception: _failure}
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)


async def _bad_request(_: Request, exc: BadRequest) -> Response:
    # the body may be unread (413) or still arriving (408): close rather than read the rest
    headers = {"connection": "close"} if exc.status in (408, 413) else None
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)


async def _http_error(_: Request, exc: HTTPException) -> Response:  # unknown path (404), wrong method (405)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _failure(_: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": f"search failed: {type(exc).__name__}: {exc}"}, status_code=500)


# ---- serving -----------------------------------------------------------------------------------------------
class LingeringTransport:
    """The connection's transport, except that `close()` lingers: the reply is flushed, the write side shut
    (FIN), and what the client still sends is read and dropped for up to LINGER_SECONDS before the socket closes.
    Closing a socket with unread input makes the kernel answer with a reset, which can destroy a 408 / 413 reply
    before the client has read it (the lingering close of Apache and nginx)."""

    LINGER_SECONDS = 2.0

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport, self._loop = transport, loop
        self.lingering = False
        self._timer: asyncio.TimerHandle | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        if self.is_closing():
            return
        self.lingering = True
        try:
            self._transport.write_eof()  # sent after the buffered reply
            self._transport.resume_reading()
        except (OSError, RuntimeError, NotImplementedError):
            self.close_now()
            return
        self._timer = self._loop.call_later(self.LINGER_SECONDS, self.close_now)

    def close_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport.close()


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a deadline for a request's headers (uvicorn has none): a connection
    that opens and then sends its headers slowly or not at all gets a 408 and is closed. Connections close
    through `LingeringTransport`, so a client still sending when it gets its 408 / 413 reads the reply."""

    def __init__(self, *args: Any, header_timeout: float = 10.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.header_timeout, self.header_timer = header_timeout, None

    def _arm(self) -> None:
        self._disarm()
        self.header_timer = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _expire(self) -> None:
        if not self.transport.is_closing():
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(
                    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(LingeringTransport(transport, self.loop))  # type: ignore[arg-type]
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self.transport.lingering:  # once closing, what the client still sends is dropped
            super().data_received(data)

    def eof_received(self) -> None:
        if self.transport.lingering:  # the client has read the reply and hung up
            self.transport.close_now()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def shutdown(self) -> None:  # server stopping: an idle connection has nothing left to read
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close_now()
        else:
            super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        self.transport.close_now()  # cancels a pending linger


class StoppingServer(uvicorn.Server):
    """Stops gracefully on SIGINT / SIGTERM and then returns. (uvicorn re-raises the signal after its shutdown,
    which would kill the process before `serve` removes the discovery file.)"""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                getattr(self, "_captured_signals", []).clear()


def uvicorn_config(app: Any, cfg: ServerConfig, log_level: str = "warning", **kwargs: Any) -> uvicorn.Config:
    """The uvicorn settings `searchgym serve` runs with (tests start servers with the same)."""
    return uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        workers=cfg.workers,
        http=functools.partial(DeadlineProtocol, header_timeout=cfg.header_timeout),
        timeout_keep_alive=cfg.keep_alive_timeout,
        log_level=log_level,
        access_log=False,
        **kwargs,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one); OSError names the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    sock.listen(2048)
    sock.set_inheritable(True)  # `--workers` processes accept on it
    return sock


def write_addr_file(directory: Path, host: str, port: int) -> Path:
    """ASearcher's server-discovery file: DIR/Host<ip>_IP<port>.txt holding "<ip>:<port>" with no newline,
    as its own server writes it (its client globs Host*_IP*.txt under $RAG_SERVER_ADDR_DIR)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"--addr-file {directory} exists and is not a directory")
    ip = socket.gethostbyname(socket.gethostname()) if host in ("0.0.0.0", "", "::") else host
    path = directory / f"Host{ip}_IP{port}.txt"
    shown = f"[{ip}]" if ":" in ip else ip  # the client builds f"http://{addr}/retrieve"
    atomic_write_text(path, f"{shown}:{port}")  # the temp file starts with "." so the client's glob skips it
    return path


def worker_app() -> Starlette:
    """App factory run in each `--workers` process: loads its own copy of the index."""
    from searchgym.index.build import load_engine

    spec = json.loads(os.environ[WORKER_ENV])
    cfg = ServerConfig.from_dict(spec["config"])
    return create_app(load_engine(spec["world"], cfg.backend), cfg)


def serve(
    world_dir: str | Path,
    config: ServerConfig | None = None,
    addr_dir: Path | None = None,
    log_level: str = "warning",
    announce: Callable[[str], None] = print,
) -> None:
    """Load WORLD's index and serve it until interrupted; `announce` gets the bound URL once listening."""
    from searchgym.index.build import load_engine

    cfg = config or ServerConfig()
    cfg.check()
    engine = load_engine(world_dir, cfg.backend)  # with --workers too: a missing index fails here, once
    sock = bind(cfg.host, cfg.port)
    port, num_docs = sock.getsockname()[1], len(engine)
    addr_file = None
    try:
        if cfg.workers > 1:
            engine.close()
            os.environ[WORKER_ENV] = json.dumps({"world": str(world_dir), "config": cfg.to_dict()})
            uv = uvicorn_config("searchgym.index.server:worker_app", cfg, log_level, factory=True)
            server_run = Multiprocess(uv, sockets=[sock]).run
        else:
            uv = uvicorn_config(create_app(engine, cfg), cfg, log_level)
            server_run = functools.partial(StoppingServer(uv).run, sockets=[sock])
        if addr_dir is not None:
            addr_file = write_addr_file(addr_dir, cfg.host, port)
        shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        announce(f"serving http://{shown}:{port} ({num_docs:,} documents, {cfg.workers} worker(s))")
        server_run()
    finally:
        if addr_file is not None:
            addr_file.unlink(missing_ok=True)
        sock.close()
