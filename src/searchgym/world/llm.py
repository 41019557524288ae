"""LLM-written articles (the paper's pipeline), through any OpenAI-compatible /chat/completions endpoint.

Each entity's article is written by the model from a fact sheet: its type, attributes, the edges it holds ("Label:
other end") and its neighbourhood (the edges it is the other end of). Then every held edge is looked for in the
written text:

1. exact: a sentence reads as the edge with one of the relation's own templates (`wording.read_as`), both names
   exact -- no model call;
2. judge: otherwise the same endpoint is asked to quote the sentence stating the fact; the quote counts only if it
   is a sentence of the article naming both ends exactly (read alone, it states the fact) and does not copy another
   relation's fact line ("Label: ...").

The sentence found becomes the edge's fact sentence (facts.jsonl), so verification's grounded check applies as for
template worlds. An article that loses facts is written again (up to `attempts` times, telling the model what it
left out); the attempt stating the most facts is kept and the facts it still lacks fail verification. Sentences
that read as an edge the graph does not have become "claim" rows of noise.jsonl (they contradict the edges they
clash with). Attributes are not edges: a short attribute box written by SearchGym follows the model's text, so
attribute questions and descriptions always have their value stated verbatim.

Every reply is cached on disk under the sha256 of (model, messages, sampling settings) and written atomically, so a
killed build resumes without asking again for anything it already has, and the same seed with the same cache gives
byte-identical worlds. Requests run `concurrency` at a time; results are assembled in entity order.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchgym.config import YamlConfig
from searchgym.errors import SearchGymError
from searchgym.http import HTTPFailure, Retry, post_json
from searchgym.io import atomic_write_text
from searchgym.world.corpus import ArticleWriter, url_for
from searchgym.world.names import name_key
from searchgym.world.wording import fill, read_as, relation_templates

WRITER_SYSTEM = (
    "You write short encyclopedia articles. Write a Wikipedia-style article about the subject using only the facts "
    "given. State every fact in its own plain sentence that names the subject, and spell every name exactly as "
    "given. Do not invent names, dates or numbers. Reply with the article text only, no headings or lists."
)
JUDGE_SYSTEM = (
    "You check articles. Reply with the one sentence of the article that states the given fact, copied exactly. "
    "If no sentence states it, reply NONE."
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


class LLMError(SearchGymError, RuntimeError):
    """The endpoint failed for good (after `searchgym.http.post_json`'s retries)."""


@dataclass
class LLMConfig(YamlConfig):
    endpoint: str = ""  # base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key (may be unset)
    timeout_s: float = 120.0
    retries: int = 3  # HTTP retries per call
    temperature: float = 0.0  # 0: as reproducible as the server allows (the cache makes rebuilds exact)
    # regenerations sample (a greedy model repeats itself): this temperature and `seed` = the attempt number
    regen_temperature: float = 0.7
    max_tokens: int = 512  # per article
    judge: bool = True  # ask the endpoint about facts no sentence states exactly
    judge_max_tokens: int = 96
    attempts: int = 3  # writes per article at most (the first plus regenerations)
    concurrency: int = 4
    cache_dir: str = ""  # "" = $XDG_CACHE_HOME/searchgym/llm (default ~/.cache/searchgym/llm)


def cache_root(cfg: LLMConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "searchgym" / "llm"


def _reply(data: Any) -> tuple[str, dict[str, int]]:
    """(text, usage) of a chat/completions reply; a KeyError / TypeError marks it malformed (retried)."""
    text = str(data["choices"][0]["message"]["content"] or "").strip()
    u = data.get("usage") or {}
    return text, {k: int(u.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")}


class Endpoint:
    """Cached chat completions: `chat(messages, max_tokens, kind)` -> (reply text, usage)."""

    def __init__(self, cfg: LLMConfig):
        import httpx

        if not cfg.endpoint:
            raise ValueError("writer 'llm' needs llm.endpoint (an OpenAI-compatible base URL)")
        self.cfg, self.root = cfg, cache_root(cfg)
        key = os.environ.get(cfg.api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(timeout=cfg.timeout_s, headers=headers)
        self.url = cfg.endpoint.rstrip("/") + "/chat/completions"
        self.retry = Retry(retries=cfg.retries, backoff=0.1, max_sleep=2.0)
        self.fresh: Counter[str] = Counter()  # this run only (not deterministic, never written to the world)
        self.lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def chat(
        self, messages: list[dict[str, str]], max_tokens: int, kind: str, attempt: int = 0
    ) -> tuple[str, dict[str, int]]:
        """`attempt` > 0: a regeneration, sampled at `regen_temperature` with `seed` = attempt, so each attempt is
        its own request (and its own cache entry) even when the prompt repeats."""
        body: dict[str, Any] = {
            "model": self.cfg.model,
            "messages": messages,
            "temperature": self.cfg.temperature,
            "max_tokens": max_tokens,
        }
        if attempt:
            body.update(temperature=self.cfg.regen_temperature, seed=attempt)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        path = self.root / digest[:2] / f"{digest}.json"
        if path.is_file():
            try:
                hit = json.loads(path.read_text(encoding="utf-8"))
                return hit["text"], hit["usage"]
            except (OSError, ValueError, KeyError):
                pass  # a damaged entry is asked again and replaced
        try:
            text, usage = post_json(self.client, self.url, body, self.retry, _reply)
        except HTTPFailure as e:
            raise LLMError(
                f"LLM writer: {e}; check that llm.endpoint serves OpenAI-compatible /chat/completions and "
                "rerun (replies already received are cached), or build with writer: template"
            ) from e
        atomic_write_text(path, json.dumps({"text": text, "usage": usage, "request": body}, sort_keys=True))
        with self.lock:
            self.fresh[kind] += 1
        return text, usage


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


@dataclass
class Written:
    """The outcome for one article."""

    doc: dict[str, Any]
    facts: dict[int, str]  # held edge id -> the sentence stating it ("" if lost)
    how: dict[int, str]  # held edge id -> "exact" | "judge" | "lost"
    attempts: int
    usage: Counter = field(default_factory=Counter)
    calls: Counter = field(default_factory=Counter)


class LLMWriter:
    """Writes and checks one article per entity (see the module docstring)."""

    def __init__(self, writer: ArticleWriter, cfg: LLMConfig):
        self.w, self.g, self.cfg = writer, writer.g, cfg
        self.schema = self.g.schema

    # -- prompts
    def fact_line(self, e: int) -> str:
        r = self.schema.relations[self.w.rel_list[e]]
        return f"{r.label}: {self.g.names[int(self.w.other[e])]}"

    def fact_statement(self, e: int) -> str:
        """The fact as one plain sentence (the relation's first holder template), for the judge."""
        r = self.schema.relations[self.w.rel_list[e]]
        s, t = self.g.names[self.w.src_list[e]], self.g.names[self.w.tgt_list[e]]
        return fill(r.phrasings[0], source=s, target=t)

    def held(self, i: int) -> list[int]:
        return self.w.held_edges[self.w.held_ptr[i] : self.w.held_ptr[i + 1]].tolist()

    def sheet(self, i: int) -> str:
        g, spec = self.g, self.schema.entity_types[int(self.g.types[i])]
        values = g.entity_attrs(i)
        lines = [f"Subject: {g.names[i]}", f"Type: {spec.noun}", "Facts:"]
        lines += [f"- {a.noun[:1].upper()}{a.noun[1:]}: {a.format(values[a.name])}" for a in spec.attributes]
        lines += [f"- {self.fact_line(e)}" for e in self.held(i)]
        others = self.w.other_edges[self.w.other_ptr[i] : self.w.other_ptr[i + 1]].tolist()
        if others:
            lines.append("Related:")
            for e in others:
                h = int(self.w.holder[e])
                noun = self.schema.entity_types[int(g.types[h])].noun
                lines.append(f"- {g.names[h]} ({noun}) has {self.fact_line(e)}")
        return "\n".join(lines)

    def messages(self, i: int, missing: list[int]) -> list[dict[str, str]]:
        user = self.sheet(i)
        if missing:
            user += "\n\nYour previous article left out these facts; state each of them in a sentence:\n"
            user += "\n".join(f"- {self.fact_line(e)}" for e in missing)
        return [{"role": "system", "content": WRITER_SYSTEM}, {"role": "user", "content": user}]

    # -- reading the text
    def exact(self, e: int, text_sentences: list[str]) -> str:
        r = self.schema.relations[self.w.rel_list[e]]
        want = {
            "source": self.g.names[self.w.src_list[e]],
            "target": self.g.names[self.w.tgt_list[e]],
        }
        for sent in text_sentences:
            for _, _, t in relation_templates(r):
                if read_as(t, sent) == want:
                    return sent
        return ""

    def judged(self, api: Endpoint, e: int, text: str, out: Written) -> str:
        other, holder = self.g.names[int(self.w.other[e])], self.g.names[int(self.w.holder[e])]
        if other not in text or holder not in text:  # no sentence can name both ends: no call needed
            return ""
        user = f"ARTICLE:\n{text}\n\nFACT: {self.fact_statement(e)}"
        msgs = [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]
        reply, usage = api.chat(msgs, self.cfg.judge_max_tokens, "judge")
        out.usage.update(usage)
        out.calls["judge"] += 1
        quote = " ".join(reply.strip().strip('"“”').split())
        if not quote or quote.upper().startswith("NONE"):
            return ""
        for sent in sentences(text):
            if quote in " ".join(sent.split()) or " ".join(sent.split()) in quote:
                named = other in sent and holder in sent  # read alone, the sentence states the fact
                return sent if named and not self.other_label(e, sent) else ""
        return ""

    def other_label(self, e: int, sent: str) -> bool:
        """Whether `sent` copies another relation's fact line ("X has Employer: Y" quoted for founded_by):
        it states that fact, not this one."""
        own = self.w.rel_list[e]
        return any(f"{r.label}:" in sent for k, r in enumerate(self.schema.relations) if k != own)

    def locate(self, api: Endpoint, i: int, text: str, out: Written) -> tuple[dict[int, str], dict[int, str]]:
        found, how = {}, {}
        sents = sentences(text)
        for e in self.held(i):
            s = self.exact(e, sents)
            how[e] = "exact" if s else "lost"
            if not s and self.cfg.judge:
                s = self.judged(api, e, text, out)
                how[e] = "judge" if s else "lost"
            found[e] = s
        return found, how

    def attribute_box(self, i: int) -> str:
        spec = self.schema.entity_types[int(self.g.types[i])]
        values = self.g.entity_attrs(i)
        box = [f"Type: {spec.noun.capitalize()}"]
        box += [f"{a.noun[:1].upper()}{a.noun[1:]}: {a.format(values[a.name])}" for a in spec.attributes]
        return "Summary\n" + "\n".join(box)

    def write(self, api: Endpoint, i: int) -> Written:
        out = Written(doc={}, facts={}, how={}, attempts=0)
        best: tuple[int, int, str, dict, dict] | None = None
        missing: list[int] = []
        for attempt in range(max(1, self.cfg.attempts)):
            text, usage = api.chat(self.messages(i, missing), self.cfg.max_tokens, "write", attempt)
            out.usage.update(usage)
            out.calls["write"] += 1
            out.attempts = attempt + 1
            found, how = self.locate(api, i, text, out)
            score = sum(1 for s in found.values() if s)
            if best is None or score > best[0]:
                best = (score, attempt, text, found, how)
            missing = [e for e, s in found.items() if not s]
            if not missing or not text:
                break
        _, _, text, out.facts, out.how = best
        name = self.g.names[i]
        body = text or f"{name}."
        out.doc = {
            "id": self.g.ids[i],
            "url": url_for(name),
            "title": name,
            "text": f"{body}\n\n{self.attribute_box(i)}",
            "entity": self.g.ids[i],
        }
        return out


def stray_claims(writer: ArticleWriter, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sentences of the written corpus that read, with the schema's templates, as an edge the graph does not have
    (noise.jsonl "claim" rows)."""
    g, schema = writer.g, writer.g.schema
    by_key = {name_key(n): i for i, n in enumerate(g.names)}
    edges = set(zip(writer.rel_list, writer.src_list, writer.tgt_list, strict=True))
    rows = []
    for doc in docs:
        for sent in sentences(doc["text"]):
            for ri, r in enumerate(schema.relations):
                for _, _, t in relation_templates(r):
                    got = read_as(t, sent)
                    if not got:
                        continue
                    s, o = by_key.get(name_key(got["source"])), by_key.get(name_key(got["target"]))
                    if s is None or o is None or g.type_of(s) != r.source or g.type_of(o) != r.target:
                        continue
                    if (ri, s, o) in edges or (r.symmetric and (ri, o, s) in edges):
                        continue
                    rows.append(
                        {
                            "kind": "claim",
                            "edge": None,
                            "doc": doc["id"],
                            "sentence": sent,
                            "relation": r.name,
                            "source": g.ids[s],
                            "target": g.ids[o],
                        }
                    )
    return rows


def write_corpus(
    writer: ArticleWriter, cfg: LLMConfig, progress: Any = None
) -> tuple[list[Written], dict[str, Any]]:
    """Write every entity's article; returns the outcomes in entity order and the manifest's "llm" record."""
    api = Endpoint(cfg)
    llm = LLMWriter(writer, cfg)
    advance = progress or (lambda: None)
    n = len(writer.g.ids)
    try:
        with ThreadPoolExecutor(max(1, cfg.concurrency)) as pool:
            results = []
            for r in pool.map(lambda i: llm.write(api, i), range(n)):
                results.append(r)
                advance()
    finally:
        api.close()
    per_rel: dict[str, Counter] = {r.name: Counter() for r in writer.g.schema.relations}
    usage, calls = Counter(), Counter()
    for res in results:
        usage.update(res.usage)
        calls.update(res.calls)
        for e, how in res.how.items():
            c = per_rel[writer.g.schema.relations[writer.rel_list[e]].name]
            c["total"] += 1
            c[how] += 1
    info = {
        "model": cfg.model,
        "articles": n,
        "regenerated": sum(1 for r in results if r.attempts > 1),
        "calls": dict(sorted(calls.items())),
        "tokens": {k: usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens")},
        "facts": {
            rel: {k: c.get(k, 0) for k in ("total", "exact", "judge", "lost")}
            for rel, c in per_rel.items()
            if c["total"]
        },
        "facts_lost": sum(c.get("lost", 0) for c in per_rel.values()),
    }
    info["fresh_calls"] = dict(api.fresh)  # popped by the build before writing the manifest
    return results, info
