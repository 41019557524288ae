"""Optional LLM rewrite of articles through any OpenAI-compatible chat/completions endpoint (off by default).

The model is asked to rewrite the article into fluent prose while keeping every fact sentence verbatim. Nothing is
trusted: a fact whose sentence is missing from the rewritten text fails the "grounded" check at verification and
its edge is dropped; `missing_facts` counts them right after the rewrite.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from searchgym.config import YamlConfig

SYSTEM_PROMPT = (
    "You are an encyclopedia editor. Rewrite the article you are given into fluent, well-organised prose in the "
    "same style (lead, Summary block, sections with '## ' headings). Keep every sentence listed under KEEP exactly "
    "as written, character for character. Do not add facts. Reply with the article text only."
)


class RewriteError(RuntimeError):
    """The rewrite endpoint failed after all retries."""


@dataclass
class RewriteConfig(YamlConfig):
    endpoint: str = ""  # base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1 ("" = off)
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key (may be unset)
    timeout_s: float = 120.0
    retries: int = 3
    temperature: float = 0.0  # 0 keeps rewrites as reproducible as the server allows
    max_tokens: int = 2048
    concurrency: int = 4


def _prompt(doc: dict[str, Any], keep: list[str]) -> list[dict[str, str]]:
    keep_block = "\n".join(f"- {s}" for s in keep)
    user = f"TITLE: {doc['title']}\n\nARTICLE:\n{doc['text']}\n\nKEEP:\n{keep_block}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def rewrite_text(client: Any, cfg: RewriteConfig, doc: dict[str, Any], keep: list[str]) -> str:
    payload = {
        "model": cfg.model,
        "messages": _prompt(doc, keep),
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens,
    }
    url = cfg.endpoint.rstrip("/") + "/chat/completions"
    last = "no attempt"
    for attempt in range(cfg.retries + 1):
        try:
            r = client.post(url, json=payload)
            r.raise_for_status()
            text = r.json()["choices"][0]["message"]["content"].strip()
            if text:
                return text
            last = "empty reply"
        except Exception as e:  # network errors, HTTP errors and malformed replies are all retried
            last = f"{type(e).__name__}: {e}"
        time.sleep(min(2.0**attempt * 0.1, 2.0))
    raise RewriteError(
        f"rewriting {doc['id']} via {url} failed after {cfg.retries + 1} attempts ({last}); check that the "
        "endpoint serves OpenAI-compatible /chat/completions, or set rewrite.endpoint to '' to turn rewriting off"
    )


def rewrite_documents(
    docs: Iterable[dict[str, Any]], keep: dict[str, list[str]], cfg: RewriteConfig
) -> Iterator[dict[str, Any]]:
    """Rewritten copies of `docs` in the same order; `keep` maps doc id -> sentences to keep verbatim."""
    import httpx

    headers = (
        {"Authorization": f"Bearer {os.environ[cfg.api_key_env]}"} if os.environ.get(cfg.api_key_env) else {}
    )
    with (
        httpx.Client(timeout=cfg.timeout_s, headers=headers) as client,
        ThreadPoolExecutor(max(1, cfg.concurrency)) as pool,
    ):

        def one(doc: dict[str, Any]) -> dict[str, Any]:
            return {**doc, "text": rewrite_text(client, cfg, doc, keep.get(doc["id"], []))}

        yield from pool.map(one, docs)


def missing_facts(docs: Iterable[dict[str, Any]], facts: Iterable[dict[str, Any]]) -> list[int]:
    """Edge ids whose fact sentence no longer appears in its holder document."""
    text = {d["id"]: d["text"] for d in docs}
    return [f["edge"] for f in facts if f["sentence"] not in text.get(f["doc"], "")]
