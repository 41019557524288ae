"""The one HTTP retry loop: every client of a remote service (search server, OpenAI-compatible generator, teacher,
LLM world writer, paraphraser) posts JSON through `post_json`.

What is retried, with exponential backoff: connection errors and timeouts, HTTP 408 / 429 / 5xx, and replies that
`parse` rejects (malformed JSON or a shape the caller cannot read). Any other status (a 4xx: the request itself is
wrong) fails at once. Either way the caller gets one `HTTPFailure` that names the URL, the status and the reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from searchgym.errors import SearchGymError

T = TypeVar("T")
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Retry:
    retries: int = 3  # extra attempts after the first
    backoff: float = 0.5  # seconds before retry n: backoff * 2**n, at most max_sleep
    max_sleep: float = 10.0


class HTTPFailure(SearchGymError, RuntimeError):
    """A request that failed for good. `status` is None when no HTTP reply came back (connection, timeout);
    `transient` is True when every attempt failed in a retryable way (the service may work again later)."""

    def __init__(
        self, url: str, reason: str, status: int | None = None, body: str = "", transient: bool = False
    ):
        super().__init__(f"{url}: {reason}")
        self.url, self.reason, self.status, self.body, self.transient = url, reason, status, body, transient


def post_json(
    client: httpx.Client,
    url: str,
    body: Any,
    retry: Retry = Retry(),
    parse: Callable[[Any], T] = lambda data: data,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """POST `body` as JSON and return `parse(reply JSON)`; `parse` raising KeyError / IndexError / TypeError /
    ValueError marks the reply malformed (retried). Raises `HTTPFailure`."""
    reason = "no attempt"
    for attempt in range(retry.retries + 1):
        if attempt:
            sleep(min(retry.backoff * 2 ** (attempt - 1), retry.max_sleep))
        try:
            reply = client.post(url, json=body)
        except httpx.TransportError as e:  # connection refused or reset, timeouts
            reason = f"{type(e).__name__}: {e}"
            continue
        if reply.status_code == 200:
            try:
                return parse(reply.json())
            except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as e:
                reason = f"malformed reply ({type(e).__name__}: {str(e)[:200]}): {reply.text[:200]}"
                continue
        reason = f"HTTP {reply.status_code}: {reply.text[:300]}"
        if reply.status_code not in RETRY_STATUS:
            raise HTTPFailure(url, reason, reply.status_code, reply.text[:2000], transient=False)
    raise HTTPFailure(url, f"failed after {retry.retries + 1} attempt(s); last: {reason}", transient=True)


def completions_url(base_url: str) -> str:
    """`/v1/completions` of an OpenAI-compatible server given its base URL, with or without the `/v1`."""
    base = base_url.rstrip("/")
    return base + ("/completions" if base.endswith("/v1") else "/v1/completions")
