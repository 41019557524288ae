"""Optional LLM paraphrase of questions through an OpenAI-compatible chat endpoint (vLLM, SGLang, llama.cpp, ...).

A rewrite is kept only if every named entity and every quoted value of the question survives verbatim, the answer
is not given away (except a comparison's options), and the text is a single non-empty question; otherwise the template question stays and
`meta["paraphrase"]` says why. The task id (a hash of the template question) never changes.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import httpx

from searchgym.errors import SearchGymError
from searchgym.http import HTTPFailure, Retry, post_json
from searchgym.tasks.config import ParaphraseConfig
from searchgym.text import normalize_answer
from searchgym.types import Task

SYSTEM = (
    "Rewrite the user's question so it reads naturally, with different wording. Keep every proper name, number "
    "and date exactly as written, keep the meaning exactly, and do not answer it. Reply with the question only."
)


class ParaphraseError(SearchGymError, RuntimeError):
    """The endpoint could not be reached or answered with something unusable."""


def _text(data: Any) -> str:
    return str(data["choices"][0]["message"]["content"]).strip()


def rewrite(client: httpx.Client, cfg: ParaphraseConfig, question: str) -> str:
    body = {
        "model": cfg.model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        "temperature": cfg.temperature,
    }
    url = cfg.base_url.rstrip("/") + "/chat/completions"
    try:
        return post_json(client, url, body, Retry(cfg.max_retries, backoff=0.1, max_sleep=2.0), _text)
    except HTTPFailure as e:
        raise ParaphraseError(f"paraphrase endpoint: {e}") from e


def problems(task: Task, text: str, names: list[str]) -> list[str]:
    """Why a rewrite is unusable (empty list = keep it)."""
    out = [f"lost {n!r}" for n in [*names, *task.meta.get("values", [])] if n not in text]
    if not text or "\n" in text.strip():
        out.append("not a single line")
    gives_away = f" {normalize_answer(task.answer)} " in f" {normalize_answer(text)} "
    if gives_away and task.type != "comparison":  # a comparison names both options by design
        out.append("gives the answer away")
    return out


def paraphrase_tasks(
    tasks: list[Task], world: Any, cfg: ParaphraseConfig, progress: bool = False
) -> list[Task]:
    """Rewrite every question through the endpoint; keeps the template question where the check fails."""
    key = os.environ.get(cfg.api_key_env, "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    out = []
    with httpx.Client(timeout=cfg.timeout_s, headers=headers) as client:
        for t in tasks:
            names = [world.entities[e].name for e in t.meta.get("named", [])]
            text = rewrite(client, cfg, t.question)
            bad = problems(t, text, names)
            meta = dict(t.meta, paraphrase="kept" if not bad else "rejected: " + "; ".join(bad))
            if not bad:
                meta["template_question"] = t.question
            out.append(dataclasses.replace(t, question=text if not bad else t.question, meta=meta))
    return out
