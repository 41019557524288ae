"""A scripted solver that proves each task solvable *by retrieval* and records gold transcripts.

The oracle plays the agent through the real `SearchEnv` over the real engine. It knows the task's logical form
(the relations and constraints the question states) and the names it has read -- never the answer. For a hop it
searches "<known name> <relation query phrase>", picks the hit whose title is that name, opens it (reading further
parts if needed) and reads the other end's name from the sentence stating the fact. For a description ("the person
who was born in X and whose birth year is 1950") it searches the stated names and values and opens the hits; if none
states every constraint it reads the anchors' articles (X's article names the people born there), and checks the
names of the right type they all mention. Comparisons read both attribute values; attribute questions read one.
Reading is a perfect reader: it knows which sentence of a page states which fact (facts.jsonl) and recognises entity
names, but only accepts what is in an observation it was actually shown: it reads the structured form of each
observation the env returns with it (`StepInfo.shown_hits`, `StepInfo.shown_page`), never the rendered text. Every
action and observation is exactly what the environment produced, so the transcripts can warm-start a policy with
supervised fine-tuning.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchgym.env.env import EnvConfig, SearchEnv
from searchgym.env.records import EpisodeSummary, StepInfo
from searchgym.env.tools import TOOLS
from searchgym.io import write_jsonl
from searchgym.tasks.forms import attribute_specs, relation_specs
from searchgym.types import Task

_NAMEISH = re.compile(r"[A-Z][\w-]*(?:\s+(?:(?:of|and|the)\s+)*[A-Z][\w-]*)*")  # runs of capitalised words
_POSSESSIVE = re.compile(r"['’]s\b")


def oracle_env_config(**overrides: Any) -> EnvConfig:
    """The oracle's env: 32 turns (the paper's training budget for 7B models), otherwise the env defaults."""
    return EnvConfig(**{"max_turns": 32, **overrides})


class Stuck(Exception):
    """The oracle could not make progress (the reason is the message)."""


class Episode:
    """One oracle attempt: wraps the env, remembers what it has read."""

    def __init__(self, oracle: Oracle, task: Task):
        self.o, self.task = oracle, task
        self.env = SearchEnv(oracle.engine, oracle.env_cfg)
        self.prompt = self.env.reset(task)
        self.turns: list[dict[str, str]] = []
        self.summary: EpisodeSummary | None = None
        self.article_url: dict[str, str] = {}  # entity id -> URL found for it
        self.pages: dict[str, list[str]] = {}  # URL -> texts of the parts read so far
        self.total_pages: dict[str, int] = {}
        self.snippets: dict[str, str] = {}  # URL -> the text its latest search hit showed

    def act(self, think: str, tag: str, arg: str) -> StepInfo:
        if self.env.done:
            raise Stuck("the episode ended (turn budget) before the oracle could answer")
        pad = " " if self.o.spaced_args else ""
        text = f"<think>{think}</think>\n<{tag}>{pad}{arg}{pad}</{tag}>"
        if self.o.env_cfg.protocol == "json":  # the bare tool call (no reasoning: short chat-model turns)
            text = f"<tool_call>{json.dumps({'name': tag, 'arguments': {TOOLS[tag].main: arg}})}</tool_call>"
        step = self.env.step(text)
        self.turns.append({"action": text, "observation": step.observation})
        if step.done:
            self.summary = step.info.episode
            if tag != "answer":
                raise Stuck(f"the episode ended ({self.summary.done_reason}) before an answer")
        if step.info.observation_cut:
            raise Stuck("the observation was cut to env.max_observation_chars; raise it for the oracle")
        return step.info

    # -- reading
    def search(self, think: str, query: str) -> list[tuple[str, str]]:
        """(url, title) of the hits the observation showed."""
        hits = self.act(think, "search", query).shown_hits
        self.snippets.update((h.url, h.snippet) for h in hits)
        return [(h.url, h.title) for h in hits]

    def shown(self, url: str, needles: list[str]) -> bool:
        """Whether a search already showed one of `needles` in the hit of `url` (no need to open it). Only with
        query-aware snippets (env.snippet "best"); with "lead" the oracle always opens the article."""
        if self.o.env_cfg.snippet != "best":
            return False
        snippet = self.snippets.get(url, "")
        return any(n in snippet for n in needles)

    def read_part(self, url: str, part: int, think: str) -> str | None:
        parts = self.pages.setdefault(url, [])
        while len(parts) < part:
            n = len(parts) + 1
            if url in self.total_pages and n > self.total_pages[url]:
                return None
            page = self.act(think, "access", url if n == 1 else f"{url}#{n}").shown_page
            if page is None:
                return None
            self.total_pages[url] = page.parts
            parts.append(page.text)
        return parts[part - 1]

    def find_in_article(self, url: str, needles: list[str], think: str) -> bool:
        """Open parts of the article until every needle has been seen in what was read."""
        part = 1
        while True:
            text = self.read_part(url, part, think)
            if text is None:
                return False
            seen = "\n".join(self.pages[url])
            if all(n in seen for n in needles):
                return True
            part += 1

    def locate(self, eid: str, phrases: list[str], purpose: str) -> str:
        """The URL of entity `eid`'s article, found by searching its (known) name."""
        if eid in self.article_url:
            return self.article_url[eid]
        name = self.o.name(eid)
        for q in [f"{name} {p}" for p in phrases[:2]] + [name]:
            for url, title in self.search(f"I need the article about {name} to find {purpose}.", q):
                if title.strip() == name:
                    self.article_url[eid] = url
                    return url
        raise Stuck(f"no search surfaced the article of {name!r}")

    def hop(self, holder: str, rel: str) -> str:
        spec = self.o.rel[rel]
        purpose = spec.descriptors[0].format(x=self.o.name(holder))
        phrases = list(spec.query)
        if self.o.env_cfg.snippet == "best" and spec.label:  # the infobox label: its line names the other end
            phrases = [spec.label.lower(), *phrases]
        url = self.locate(holder, phrases, purpose)
        doc = self.o.world.doc_by_url(url)
        facts = [f for f in self.o.facts_by_doc.get(doc.id, ()) if f[0] == rel and f[1] == holder]
        for _, _, other, sentence in facts:  # the search hit itself may state the fact (env.snippet "best")
            name = self.o.name(other)
            if name in sentence and self.shown(url, [sentence.rstrip("."), f"{spec.label}: {name}"]):
                return other
        for _, _, other, sentence in facts:
            if self.find_in_article(url, [sentence], f"I read the article to find {purpose}."):
                if self.o.name(other) in sentence:
                    return other
        raise Stuck(f"the article {url} does not state {purpose}")

    def attribute(self, eid: str, attr: str) -> tuple[float, str]:
        """(sort key, text) of an attribute value, read on the entity's article."""
        spec = self.o.attrs[self.o.world.entities[eid].type][attr]
        value = self.o.world.entities[eid].attrs.get(attr)
        url = self.locate(eid, [spec.noun], f"its {spec.noun}")
        if value is not None and self.shown(
            url, [f"{spec.noun[:1].upper()}{spec.noun[1:]}: {spec.format(value)}"]
        ):
            return (spec.sort_key(value) if spec.numeric else 0.0), spec.format(value)
        if value is None or not self.find_in_article(
            url, [spec.format(value)], f"I look for the {spec.noun}."
        ):
            raise Stuck(f"the article {url} does not state the {spec.noun}")
        return (spec.sort_key(value) if spec.numeric else 0.0), spec.format(value)

    def answer(self, form: dict[str, Any]) -> str:
        """The answer text: a value for attribute questions, else the name of the entity found."""
        if "attr" in form:
            return self.attribute(self.resolve(form["of"]), form["attr"])[1]
        return self.o.name(self.resolve(form))

    def satisfies(
        self, url: str, etype: str, where: list[dict[str, Any]], anchors: dict[int, str]
    ) -> str | None:
        """The entity of the article at `url` if reading it shows every constraint, else None."""
        doc = self.o.world.doc_by_url(url)
        if doc is None or doc.entity is None or self.o.world.entities[doc.entity].type != etype:
            return None
        x = self.o.world.entities[doc.entity]
        needles = []
        for i, c in enumerate(where):
            if "rel" in c:
                sents = [
                    s
                    for r, h, o, s in self.o.facts_by_doc.get(doc.id, ())
                    if r == c["rel"] and h == x.id and o == anchors[i]
                ]
                if not sents:
                    return None
                needles.append(sents[0])
            else:
                spec = self.o.attrs[etype][c["attr"]]
                if x.attrs.get(c["attr"]) != c["value"]:
                    return None
                needles.append(spec.format(c["value"]))
        ok = self.find_in_article(url, needles, f"I check whether {x.name} matches the description.")
        return x.id if ok else None

    def find(self, form: dict[str, Any]) -> str:
        anchors = {i: self.resolve(c["to"]) for i, c in enumerate(form["where"]) if "rel" in c}
        parts, single = [], []
        for i, c in enumerate(form["where"]):
            if "rel" in c:
                phrase = f"{self.o.name(anchors[i])} {self.o.rel[c['rel']].query[0]}"
                single.append(phrase)
            else:
                phrase = self.o.attrs[form["find"]][c["attr"]].format(c["value"])
            parts.append(phrase)
        tried: set[str] = set()
        anchor_names = {self.o.name(a) for a in anchors.values()}
        think = f"I search for the {form['find']} matching all the constraints."
        for url, title in self.search(think, " ".join(parts)):
            if url not in tried and title.strip() not in anchor_names:
                tried.add(url)
                if (found := self.satisfies(url, form["find"], form["where"], anchors)) is not None:
                    self.article_url[found] = url
                    return found
        # fall back: read the anchors' articles and check the names of that type they all mention
        pools = [self.mentions(a, form["find"]) for a in anchors.values()]
        for cand in [c for c in pools[0] if all(c in p for p in pools[1:])] if pools else []:
            url = self.locate(cand, [], "whether it matches the description")
            if url not in tried:
                tried.add(url)
                if self.satisfies(url, form["find"], form["where"], anchors) is not None:
                    return cand
        raise Stuck("no searched article matched the description")

    def mentions(self, eid: str, etype: str) -> list[str]:
        """Entities of `etype` named anywhere in `eid`'s article (all parts read)."""
        url = self.locate(eid, [], f"the {etype}s it mentions")
        part = 1
        while (
            self.read_part(url, part, f"I read the article about {self.o.name(eid)} for {etype}s it names.")
            is not None
        ):
            part += 1
        return self.o.spot("\n".join(self.pages[url]), etype)

    def resolve(self, form: dict[str, Any]) -> str:
        if "entity" in form:
            return form["entity"]
        if "hop" in form:
            return self.hop(self.resolve(form["of"]), form["hop"])
        if "find" in form:
            return self.find(form)
        if "compare" in form:
            a, b = (self.resolve(f) for f in form["of"])
            va, vb = self.attribute(a, form["compare"])[0], self.attribute(b, form["compare"])[0]
            low, high = (a, b) if va < vb else (b, a)
            return low if form["pick"] == "lower" else high
        raise Stuck(f"unknown form {form!r}")


@dataclass
class OracleResult:
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    unsolved: dict[str, str] = field(default_factory=dict)  # task id -> reason

    def table(self) -> dict[str, dict[str, float]]:
        """Success rate and count per type, per level and overall."""
        groups: dict[str, list[bool]] = defaultdict(list)
        for t in self.transcripts:
            for key in ("all", f"type/{t['type']}", f"level/{t['level']}"):
                groups[key].append(bool(t["success"]))
        return {k: {"n": len(v), "success": sum(v) / len(v)} for k, v in sorted(groups.items())}


class Oracle:
    def __init__(self, world: Any, engine: Any, env_cfg: EnvConfig | None = None, spaced_args: bool = False):
        """`spaced_args`: write actions as `<search> query </search>` (the env strips the spaces). A word-level
        tokenizer then gives a name the same token inside an action as in the question and observations
        (" Acme"), which makes copying names much easier for a tiny model."""
        self.world, self.engine = world, engine
        self.spaced_args = spaced_args
        self.env_cfg = env_cfg or oracle_env_config()
        self.rel = relation_specs(world.schema)
        self.attrs = attribute_specs(world.schema)
        edges = {e.id: e for e in world.edges}
        self.facts_by_doc: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
        for f in world.facts.values():
            e = edges[f.edge]
            self.facts_by_doc[f.doc].append((e.relation, world.holder(e), world.other_end(e), f.sentence))

    def name(self, eid: str) -> str:
        return self.world.entities[eid].name

    def spot(self, text: str, etype: str) -> list[str]:
        """Entities of `etype` whose exact names occur in `text`, in order (a reader recognising names)."""
        out: list[str] = []
        for m in _NAMEISH.finditer(_POSSESSIVE.sub("", text)):
            words = m.group().split()
            for i in range(len(words)):
                for j in range(min(len(words), i + 8), i, -1):
                    e = self.world.entity_by_name(" ".join(words[i:j]))
                    if e is not None and e.type == etype and e.id not in out:
                        out.append(e.id)
                        break
        return out

    def solve(self, task: Task) -> tuple[dict[str, Any], str | None]:
        """Play one episode; returns the transcript and the reason it failed (None when solved)."""
        ep = Episode(self, task)
        reason = None
        try:
            ep.act("I have everything I need to answer.", "answer", ep.answer(task.meta["form"]))
        except Stuck as e:
            reason = str(e)
        summary = ep.summary
        success = summary is not None and summary.success
        if reason is None and not success:
            reason = "answered, but not the gold answer"
        transcript = {
            "task_id": task.id,
            "type": task.type,
            "level": task.level,
            "prompt": ep.prompt,
            "turns": ep.turns,
            "reward": float(summary.reward) if summary is not None else 0.0,
            "success": success,
        }
        return transcript, reason

    def run(self, tasks: list[Task], progress: bool = False) -> OracleResult:
        result = OracleResult()
        from rich.progress import Progress

        with Progress(transient=True, disable=not progress) as bar:
            tid = bar.add_task("oracle", total=len(tasks))
            for task in tasks:
                transcript, reason = self.solve(task)
                result.transcripts.append(transcript)
                if reason is not None:
                    result.unsolved[task.id] = reason
                bar.advance(tid)
        return result


def save_transcripts(path: str | Path, result: OracleResult) -> int:
    return write_jsonl(Path(path), result.transcripts)
