"""An independent re-derivation of task answers from the corpus text alone.

It reads every article the way a careful reader would -- sentence by sentence, with the schema's templates turned
into patterns written here (not searchgym's reader), names resolved against document titles -- and collects what
the corpus claims: relations between titled things and attribute values. Each task's logical form is then
evaluated over those claims; a task is a violation when the form does not denote exactly its answer, or when an
alias of the answer is some other document's title or sits inside one.

    .venv/bin/python tests/rederive.py WORLD [WORLD ...]        # every task set of each world

Nothing here imports searchgym's task or verification code: only the schema parser (for the templates) and the
attribute formatter (for the value texts articles print).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from searchgym.world.schema import parse_schema

_FIELD = re.compile(r"{(\w+)}")
_SPLIT = re.compile(r"(?<=[.?!])\s+(?=[A-Z])|\n+")


def _pattern(template: str) -> re.Pattern[str]:
    parts, pos = [], 0
    for m in _FIELD.finditer(template):
        raw = template[pos : m.start()]
        if re.search(r"(^|\W)[Aa] $", raw):  # the writer turns "a" into "an" before a vowel
            parts.append(re.escape(raw[:-1]) + "n? ")
        else:
            parts.append(re.escape(raw))
        parts.append(f"(?P<{m.group(1)}>.+?)")
        pos = m.end()
    parts.append(re.escape(template[pos:]))
    return re.compile("".join(parts))


def _anchor(template: str) -> str:
    """The template's longest piece of fixed text (a sentence without it cannot match; checked before the regex)."""
    pieces = [x.strip() for x in _FIELD.split(template)[::2]]
    best = max(pieces, key=len, default="")
    return "" if best in ("a", "A") else best.removeprefix("a ").removeprefix("A ")


def _literal(template: str) -> int:
    """How much fixed text a template has (its specificity)."""
    return len(_FIELD.sub("", template))


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class CorpusReading:
    """Claims read off the corpus: rel[(relation, holder title)] -> other titles, attr[(title, attr)] -> texts."""

    def __init__(self, world: Path):
        self.schema = parse_schema((world / "schema.yaml").read_text(encoding="utf-8"))
        self.docs = _load(world / "corpus.jsonl")
        self.entities = {e["id"]: e for e in _load(world / "entities.jsonl")}
        self.titles = {d["title"] for d in self.docs}
        self.type_of: dict[str, str] = {}
        leads = [(t.name, _pattern(p)) for t in self.schema.entity_types for p in t.lead]
        by_noun = {f"Type: {t.noun.capitalize()}": t.name for t in self.schema.entity_types}
        own = {
            t.name: [_pattern(p) for a in t.attributes for p in a.phrasings] for t in self.schema.entity_types
        }
        for d in self.docs:
            lines = d["text"].splitlines()
            boxed = next((by_noun[x] for x in lines if x in by_noun), None)
            if boxed is not None:
                self.type_of[d["title"]] = boxed
                continue
            # no infobox (distractors): the type whose lead fits and whose attribute sentences occur most
            fits = [t for t, p in leads if p.fullmatch(lines[0].strip())]
            sents = [x.strip() for x in _SPLIT.split(d["text"])]
            score = {t: sum(1 for x in sents for p in own[t] if p.fullmatch(x)) for t in fits}
            self.type_of[d["title"]] = max(fits, key=lambda t: (score[t], t)) if fits else "?"
        self.holder_side = {
            r.name: (
                "both" if r.cardinality == "symmetric" else "target" if r.cardinality == "1-n" else "source"
            )
            for r in self.schema.relations
        }
        rel_patterns = [
            (r, t, _anchor(t), _pattern(t))
            for r in self.schema.relations
            for t in (*r.phrasings, *r.other_phrasings)
        ]
        attr_patterns = [
            (t.name, a.name, p, _anchor(p), _pattern(p))
            for t in self.schema.entity_types
            for a in t.attributes
            for p in a.phrasings
        ]
        lead_fields = [(t.name, p, _anchor(p), _pattern(p)) for t in self.schema.entity_types for p in t.lead]
        labels = {
            (r.source if r.cardinality != "1-n" else r.target, r.label): r for r in self.schema.relations
        }
        nouns = {
            (t.name, a.noun[:1].upper() + a.noun[1:]): a.name
            for t in self.schema.entity_types
            for a in t.attributes
        }
        self.rel: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.attr: dict[tuple[str, str], set[str]] = defaultdict(set)
        for d in self.docs:
            me = d["title"]
            for sent in _SPLIT.split(d["text"]):
                sent = sent.strip()
                if not sent:
                    continue
                if ": " in sent and not sent.endswith("."):  # an infobox line "Label: value"
                    label, _, value = sent.partition(": ")
                    r = labels.get((self.type_of[me], label))
                    if r is not None and value in self.titles:
                        src, tgt = (value, me) if r.cardinality == "1-n" else (me, value)
                        self._claim(r, src, tgt)
                    a = nouns.get((self.type_of[me], label))
                    if a is not None:
                        self.attr[(me, a)].add(value)
                    continue
                # every reading of the sentence; only the most specific ones count (the template with the most
                # literal text: "X is a work by Y." is a creator sentence, not the medium "work by Y")
                readings = []
                for r, t, anchor, p in rel_patterns:
                    m = anchor in sent and p.fullmatch(sent)
                    if m and m["source"] in self.titles and m["target"] in self.titles:
                        if (self.type_of[m["source"]], self.type_of[m["target"]]) == (r.source, r.target):
                            readings.append((_literal(t), "rel", r, m.groupdict()))
                for ty, a, t, anchor, p in attr_patterns:
                    m = anchor in sent and p.fullmatch(sent)
                    if m and m["name"] in self.titles and self.type_of[m["name"]] == ty:
                        readings.append((_literal(t), "attr", a, m.groupdict()))
                for ty, t, anchor, p in lead_fields:
                    m = anchor in sent and p.fullmatch(sent)
                    if m and m.groupdict().get("name") in self.titles and self.type_of[m["name"]] == ty:
                        readings.append((_literal(t), "lead", None, m.groupdict()))
                best = max((x[0] for x in readings), default=0)
                for size, kind, what, got in readings:
                    if size < best:
                        continue
                    if kind == "rel":
                        self._claim(what, got["source"], got["target"])
                    elif kind == "attr":
                        self.attr[(got["name"], what)].add(got["value"])
                    else:
                        for k, v in got.items():
                            if k != "name":
                                self.attr[(got["name"], k)].add(v)

    def _claim(self, r, src: str, tgt: str) -> None:
        side = self.holder_side[r.name]
        if side in ("source", "both"):
            self.rel[(r.name, src)].add(tgt)
        if side in ("target", "both"):
            self.rel[(r.name, tgt)].add(src)

    def spec(self, etype: str, attr: str):
        return self.schema.entity_type(etype).attribute(attr)

    def solve(self, form: dict) -> set[str]:
        """Titles (or value texts) the form denotes according to the corpus."""
        if "entity" in form:
            return {self.entities[form["entity"]]["name"]}
        if "hop" in form:
            return {o for x in self.solve(form["of"]) for o in self.rel.get((form["hop"], x), ())}
        if "find" in form:
            cands = {t for t, ty in self.type_of.items() if ty == form["find"]}
            for c in form["where"]:
                if "rel" in c:
                    targets = self.solve(c["to"])
                    cands = {h for h in cands if self.rel.get((c["rel"], h), set()) & targets}
                else:
                    text = self.spec(form["find"], c["attr"]).format(c["value"])
                    cands = {h for h in cands if text in self.attr.get((h, c["attr"]), ())}
            return cands
        if "attr" in form:
            return {v for x in self.solve(form["of"]) for v in self.attr.get((x, form["attr"]), ())}
        if "compare" in form:
            sides = [self.solve(f) for f in form["of"]]
            if any(len(s) != 1 for s in sides):
                return set()
            (a,), (b,) = sides
            keys = []
            for x in (a, b):
                texts = self.attr.get((x, form["compare"]), set())
                ent = next((e for e in self.entities.values() if e["name"] == x), None)
                spec = self.spec(self.type_of[x], form["compare"])
                if ent is None or len(texts) != 1 or texts != {spec.format(ent["attrs"][form["compare"]])}:
                    return set()
                keys.append(spec.sort_key(ent["attrs"][form["compare"]]))
            if keys[0] == keys[1]:
                return set()
            low, high = (a, b) if keys[0] < keys[1] else (b, a)
            return {low if form["pick"] == "lower" else high}
        raise ValueError(form)


def _words(s: str) -> str:
    return " " + " ".join(re.sub(r"[^\w]+", " ", s.lower()).split()) + " "


def check_tasks(world: Path, tasks: list[dict], reading: CorpusReading | None = None) -> Counter:
    """Violations by kind: 'not unique' (several answers), 'no answer', 'wrong answer', 'hidden start not unique'
    (an obfuscated task's description denotes several entities, even if their chains meet), 'alias clash'."""
    reading = reading or CorpusReading(world)
    out: Counter = Counter()
    folded_titles = [_words(t) for t in reading.titles]
    for t in tasks:
        sols = reading.solve(t["meta"]["form"])
        if len(sols) > 1:
            out["not unique"] += 1
        elif not sols:
            out["no answer"] += 1
        elif sols != {t["answer"]}:
            out["wrong answer"] += 1
        start = t["meta"]["form"]
        while isinstance(start, dict) and "of" in start and "find" not in start:
            start = start["of"]
        if "find" in start and t["type"] == "obfuscated" and len(reading.solve(start)) != 1:
            out["hidden start not unique"] += 1
        for alias in t["aliases"]:
            a = _words(alias)
            if any(a in ft and ft != _words(t["answer"]) for ft in folded_titles):
                out["alias clash"] += 1
                break
        out["tasks"] += 1
    return out


def main(argv: list[str]) -> int:
    bad = 0
    for w in map(Path, argv):
        reading = CorpusReading(w)
        for ts in sorted((w / "tasks").glob("*/tasks.jsonl")):
            counts = check_tasks(w, _load(ts), reading)
            bad += sum(v for k, v in counts.items() if k != "tasks")
            print(f"{ts}: {dict(counts)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
