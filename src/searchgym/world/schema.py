"""The declarative world schema: entity types with sampled attributes, and typed relations.

`load_schema(None)` returns the built-in `default_schema.yaml`; `load_schema(path)` reads a user schema.
Every problem in a schema is collected and reported at once with its location, e.g.
"relations[3].target: unknown entity type 'citty'".
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from searchgym.errors import SearchGymError

DEFAULT_SCHEMA_PATH = Path(__file__).with_name("default_schema.yaml")
CARDINALITIES = ("1-1", "1-n", "n-1", "symmetric")
ATTRIBUTE_KINDS = ("int", "float", "year", "date", "choice")
NUMERIC_KINDS = ("int", "float", "year", "date")
_CONSTRAINT = re.compile(
    r"^\s*(source|target)\.(\w+)\s*(?:([+-])\s*(\d+))?\s*(<=|<|>=|>)\s*(source|target)\.(\w+)\s*(?:([+-])\s*(\d+))?\s*$"
)
_FIELD = re.compile(r"{(\w+)}")


class SchemaError(SearchGymError, ValueError):
    """An unusable schema; `problems` lists every problem with its location."""

    def __init__(self, problems: list[str], where: str = "schema"):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{where}: {len(problems)} problem(s):\n{lines}\nFix these entries and try again.")


@dataclass(frozen=True)
class AttributeSpec:
    name: str
    kind: str  # "int" | "float" | "year" | "date" | "choice"
    low: float = 0  # numeric kinds: inclusive range (years for "date")
    high: float = 0
    dist: str = "uniform"  # "uniform" | "loguniform" (int, float)
    decimals: int = 1  # float only
    values: tuple[str, ...] = ()  # choice only
    weights: tuple[float, ...] = ()  # choice only (empty: uniform)
    unit: str = ""
    noun: str = ""  # e.g. "founding year"
    phrasings: tuple[str, ...] = ()  # templates with {name} and {value}
    questions: tuple[str, ...] = ()  # templates with {x}
    comparatives: tuple[str, ...] = ()  # [lower_word, higher_word], numeric kinds only
    descriptors: tuple[str, ...] = ()  # e.g. "the company founded in {value}"
    section: str = ""  # article section stating it ("" = the entity type's section)

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC_KINDS

    def format(self, value: Any) -> str:
        """The surface form of a value as articles state it (and as answers should match)."""
        if self.kind == "date":
            d = dt.date.fromisoformat(value)
            text = f"{d.day} {d.strftime('%B')} {d.year}"
        elif self.kind == "int":
            text = f"{int(value):,}"
        elif self.kind == "float":
            text = f"{float(value):,.{self.decimals}f}"
        else:
            text = str(value)
        return f"{text} {self.unit}" if self.unit else text

    def sort_key(self, value: Any) -> float:
        """A number that orders values of this attribute (dates by ordinal)."""
        if self.kind == "date":
            return float(dt.date.fromisoformat(value).toordinal())
        return float(value)


@dataclass(frozen=True)
class Constraint:
    """`left_side.left_attr + left_offset OP right_side.right_attr + right_offset`, e.g.
    "source.birth_year + 18 <= target.founded_year"."""

    text: str
    left: tuple[str, str, int]  # (side, attribute, offset)
    op: str
    right: tuple[str, str, int]

    @classmethod
    def parse(cls, text: str) -> Constraint | None:
        m = _CONSTRAINT.match(text)
        if not m:
            return None
        ls, la, lsign, lnum, op, rs, ra, rsign, rnum = m.groups()

        def off(sign: str | None, num: str | None) -> int:
            return 0 if num is None else (-int(num) if sign == "-" else int(num))

        return cls(text, (ls, la, off(lsign, lnum)), op, (rs, ra, off(rsign, rnum)))


@dataclass(frozen=True)
class RelationSpec:
    name: str
    source: str
    target: str
    cardinality: str  # "1-1" | "1-n" | "n-1" | "symmetric" (a 1-1 matching stated by both partners)
    acyclic: bool = False
    coverage: float = 1.0  # fraction of holder-side entities that get this edge (before constraints)
    max_degree: int = 0  # cap on edges per other-end entity (0: the world config's max_degree)
    label: str = ""  # infobox label in the holder article, e.g. "Birthplace"
    phrasings: tuple[str, ...] = ()  # holder-article sentences with {source} and {target}
    other_phrasings: tuple[str, ...] = ()  # non-holder-article sentences with {source} and {target}
    query: tuple[str, ...] = ()  # keyword phrases to add to the holder's name, e.g. "born in"
    questions: tuple[str, ...] = ()  # templates with {x} = holder name asking for the other end
    descriptors: tuple[str, ...] = ()  # noun phrases with {x} = the other end's name
    constraints: tuple[Constraint, ...] = ()
    section: str = ""  # section of the holder article stating it ("" = the holder type's section)

    @property
    def holder(self) -> str:
        """ "source" for n-1, 1-1 and symmetric, "target" for 1-n: the side whose article states the edge.
        A symmetric pair is two edges, one per direction, each stated by its own source."""
        return "target" if self.cardinality == "1-n" else "source"

    @property
    def symmetric(self) -> bool:
        return self.cardinality == "symmetric"

    @property
    def one_holder_per_other(self) -> bool:
        """Whether an other end has at most one holder too (1-1 and symmetric), so a second claimed holder
        contradicts the edge."""
        return self.cardinality in ("1-1", "symmetric")

    @property
    def other(self) -> str:
        return "source" if self.holder == "target" else "target"

    def orient(self, source: Any, target: Any) -> tuple[Any, Any]:
        """(holder, other) of an edge from its (source, target). A swap, so it maps (holder, other) back to
        (source, target) as well."""
        return (target, source) if self.holder == "target" else (source, target)

    @property
    def holder_type(self) -> str:
        return self.target if self.holder == "target" else self.source

    @property
    def other_type(self) -> str:
        return self.source if self.holder == "target" else self.target


@dataclass(frozen=True)
class EntityTypeSpec:
    name: str
    name_style: str  # a style registered in searchgym.world.names
    weight: float  # share of entities of this type (the default type mix)
    noun: str = ""  # e.g. "person"; defaults to the name
    min_count: int = 2
    lead: tuple[str, ...] = ()  # lead sentences with {name} and {<attribute>} fields
    section: str = "Overview"  # default section for attribute and holder-edge sentences
    sections: tuple[
        str, ...
    ] = ()  # order of sections in the article (unlisted ones follow, Connections last)
    attributes: tuple[AttributeSpec, ...] = ()

    def attribute(self, name: str) -> AttributeSpec | None:
        return next((a for a in self.attributes if a.name == name), None)


@dataclass(frozen=True)
class Schema:
    name: str
    entity_types: tuple[EntityTypeSpec, ...]
    relations: tuple[RelationSpec, ...]
    text: str = field(default="", repr=False)  # the YAML it was read from (stored in the world dir)

    def entity_type(self, name: str) -> EntityTypeSpec:
        for t in self.entity_types:
            if t.name == name:
                return t
        raise KeyError(f"unknown entity type {name!r}; known: {[t.name for t in self.entity_types]}")

    def relation(self, name: str) -> RelationSpec:
        try:
            return self._relations[name]
        except KeyError:
            raise KeyError(f"unknown relation {name!r}; known: {[r.name for r in self.relations]}") from None

    @cached_property
    def _relations(self) -> dict[str, RelationSpec]:
        return {r.name: r for r in self.relations}

    @property
    def type_names(self) -> list[str]:
        return [t.name for t in self.entity_types]


def load_schema(path: str | Path | None = None) -> Schema:
    """Read and validate a schema; None gives the built-in default."""
    p = Path(path) if path is not None else DEFAULT_SCHEMA_PATH
    if not p.exists():
        raise SchemaError([f"file not found: {p}"], where=str(p))
    return parse_schema(p.read_text(encoding="utf-8"), where=str(p))


def parse_schema(text: str, where: str = "schema") -> Schema:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SchemaError([f"not valid YAML: {e}"], where=where) from e
    problems: list[str] = []
    schema = _build(data, problems)
    if problems or schema is None:
        raise SchemaError(problems or ["empty schema"], where=where)
    return Schema(schema.name, schema.entity_types, schema.relations, text=text)


def _as_list(value: Any, loc: str, problems: list[str]) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{loc}: expected a list, got {type(value).__name__}")
        return []
    return value


def _templates(
    value: Any, loc: str, allowed: set[str], problems: list[str], required: bool
) -> tuple[str, ...]:
    items = _as_list(value, loc, problems)
    if required and not items:
        problems.append(f"{loc}: at least one template is required")
    out = []
    for i, t in enumerate(items):
        if not isinstance(t, str):
            problems.append(f"{loc}[{i}]: expected a string")
            continue
        bad = sorted(set(_FIELD.findall(t)) - allowed)
        if bad:
            problems.append(f"{loc}[{i}]: unknown field(s) {bad} in {t!r}; allowed: {sorted(allowed)}")
        out.append(t)
    return tuple(out)


def _check_keys(d: dict, allowed: set[str], loc: str, problems: list[str]) -> None:
    for k in sorted(set(d) - allowed):
        problems.append(f"{loc}: unknown key {k!r}; allowed: {sorted(allowed)}")


def _attribute(d: Any, loc: str, problems: list[str]) -> AttributeSpec | None:
    if not isinstance(d, dict):
        problems.append(f"{loc}: expected a mapping")
        return None
    keys = {f.name for f in AttributeSpec.__dataclass_fields__.values()}
    _check_keys(d, keys, loc, problems)
    name, kind = d.get("name"), d.get("kind")
    if not isinstance(name, str) or not name.isidentifier():
        problems.append(f"{loc}.name: expected an identifier, got {name!r}")
        name = str(name)
    if kind not in ATTRIBUTE_KINDS:
        problems.append(f"{loc}.kind: {kind!r} is not one of {list(ATTRIBUTE_KINDS)}")
        return None
    low, high = d.get("low", 0), d.get("high", 0)
    if kind in NUMERIC_KINDS:
        if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low > high:
            problems.append(f"{loc}: needs numbers low <= high, got low={low!r} high={high!r}")
        elif d.get("dist", "uniform") == "loguniform" and low <= 0:
            problems.append(f"{loc}.low: loguniform needs low > 0, got {low!r}")
    if d.get("dist", "uniform") not in ("uniform", "loguniform"):
        problems.append(f"{loc}.dist: {d.get('dist')!r} is not one of ['uniform', 'loguniform']")
    values = tuple(str(v) for v in _as_list(d.get("values"), f"{loc}.values", problems))
    weights = tuple(float(w) for w in _as_list(d.get("weights"), f"{loc}.weights", problems))
    if kind == "choice" and not values:
        problems.append(f"{loc}.values: a choice attribute needs at least one value")
    if weights and len(weights) != len(values):
        problems.append(f"{loc}.weights: {len(weights)} weights for {len(values)} values")
    comparatives = tuple(_as_list(d.get("comparatives"), f"{loc}.comparatives", problems))
    if comparatives and (kind not in NUMERIC_KINDS or len(comparatives) != 2):
        problems.append(f"{loc}.comparatives: expected [lower_word, higher_word] on a numeric attribute")
    return AttributeSpec(
        name=name,
        kind=kind,
        low=low,
        high=high,
        dist=d.get("dist", "uniform"),
        decimals=int(d.get("decimals", 1)),
        values=values,
        weights=weights,
        unit=str(d.get("unit", "")),
        noun=str(d.get("noun", name.replace("_", " "))),
        phrasings=_templates(d.get("phrasings"), f"{loc}.phrasings", {"name", "value"}, problems, True),
        questions=_templates(d.get("questions"), f"{loc}.questions", {"x"}, problems, False),
        comparatives=tuple(str(c) for c in comparatives),
        descriptors=_templates(d.get("descriptors"), f"{loc}.descriptors", {"value"}, problems, False),
        section=str(d.get("section", "")),
    )


def _build(data: Any, problems: list[str]) -> Schema | None:
    if not isinstance(data, dict):
        problems.append("top level: expected a mapping with 'entity_types' and 'relations'")
        return None
    _check_keys(data, {"name", "entity_types", "relations"}, "top level", problems)
    from searchgym.world.names import NAME_STYLES

    types: list[EntityTypeSpec] = []
    attrs_of: dict[str, dict[str, AttributeSpec]] = {}
    for i, t in enumerate(_as_list(data.get("entity_types"), "entity_types", problems)):
        loc = f"entity_types[{i}]"
        if not isinstance(t, dict):
            problems.append(f"{loc}: expected a mapping")
            continue
        keys = {f.name for f in EntityTypeSpec.__dataclass_fields__.values()}
        _check_keys(t, keys, loc, problems)
        name = t.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            problems.append(f"{loc}.name: expected a lower-case identifier, got {name!r}")
            name = str(name)
        if name in attrs_of:
            problems.append(f"{loc}.name: duplicate entity type {name!r}")
        style = t.get("name_style")
        if style not in NAME_STYLES:
            problems.append(f"{loc}.name_style: unknown style {style!r}; known: {sorted(NAME_STYLES)}")
        weight = t.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or weight < 0:
            problems.append(f"{loc}.weight: expected a number >= 0, got {weight!r}")
            weight = 0.0
        attrs = []
        for j, a in enumerate(_as_list(t.get("attributes"), f"{loc}.attributes", problems)):
            spec = _attribute(a, f"{loc}.attributes[{j}]", problems)
            if spec is None:
                continue
            if any(x.name == spec.name for x in attrs):
                problems.append(f"{loc}.attributes[{j}].name: duplicate attribute {spec.name!r}")
            attrs.append(spec)
        names = {"name"} | {a.name for a in attrs}
        spec = EntityTypeSpec(
            name=name,
            name_style=str(style),
            weight=float(weight),
            noun=str(t.get("noun", name.replace("_", " "))),
            min_count=int(t.get("min_count", 2)),
            lead=_templates(t.get("lead"), f"{loc}.lead", names, problems, True),
            section=str(t.get("section", "Overview")),
            sections=tuple(str(x) for x in _as_list(t.get("sections"), f"{loc}.sections", problems)),
            attributes=tuple(attrs),
        )
        types.append(spec)
        attrs_of[name] = {a.name: a for a in attrs}
    if not types:
        problems.append("entity_types: at least one entity type is required")

    relations: list[RelationSpec] = []
    seen: set[str] = set()
    for i, r in enumerate(_as_list(data.get("relations"), "relations", problems)):
        loc = f"relations[{i}]"
        if not isinstance(r, dict):
            problems.append(f"{loc}: expected a mapping")
            continue
        keys = {f.name for f in RelationSpec.__dataclass_fields__.values()}
        _check_keys(r, keys, loc, problems)
        name = r.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            problems.append(f"{loc}.name: expected an identifier, got {name!r}")
            name = str(name)
        if name in seen:
            problems.append(f"{loc}.name: duplicate relation {name!r}")
        seen.add(name)
        for side in ("source", "target"):
            if r.get(side) not in attrs_of:
                problems.append(
                    f"{loc}.{side}: unknown entity type {r.get(side)!r}; known: {sorted(attrs_of)}"
                )
        card = r.get("cardinality")
        if card not in CARDINALITIES:
            problems.append(f"{loc}.cardinality: {card!r} is not one of {list(CARDINALITIES)}")
        coverage = r.get("coverage", 1.0)
        if not isinstance(coverage, (int, float)) or not 0 <= coverage <= 1:
            problems.append(f"{loc}.coverage: expected a number in [0, 1], got {coverage!r}")
            coverage = 0.0
        constraints = []
        for j, c in enumerate(_as_list(r.get("constraints"), f"{loc}.constraints", problems)):
            parsed = Constraint.parse(c) if isinstance(c, str) else None
            if parsed is None:
                problems.append(
                    f"{loc}.constraints[{j}]: cannot parse {c!r}; "
                    "expected e.g. 'source.birth_year + 18 <= target.founded_year'"
                )
                continue
            for side, attr, _ in (parsed.left, parsed.right):
                spec = attrs_of.get(r.get(side), {}).get(attr)
                if r.get(side) in attrs_of and (spec is None or spec.kind not in ("int", "float", "year")):
                    problems.append(
                        f"{loc}.constraints[{j}]: {side}.{attr} is not an int/float/year attribute "
                        f"of {r.get(side)!r}"
                    )
            constraints.append(parsed)
        st = {"source", "target"}
        spec = RelationSpec(
            name=name,
            source=str(r.get("source")),
            target=str(r.get("target")),
            cardinality=str(card),
            acyclic=bool(r.get("acyclic", False)),
            coverage=float(coverage),
            max_degree=int(r.get("max_degree", 0)) if isinstance(r.get("max_degree", 0), int) else 0,
            label=str(r.get("label", name.replace("_", " ").capitalize())),
            phrasings=_templates(r.get("phrasings"), f"{loc}.phrasings", st, problems, True),
            other_phrasings=_templates(
                r.get("other_phrasings"), f"{loc}.other_phrasings", st, problems, card != "symmetric"
            ),
            query=tuple(str(q) for q in _as_list(r.get("query"), f"{loc}.query", problems)),
            questions=_templates(r.get("questions"), f"{loc}.questions", {"x"}, problems, False),
            descriptors=_templates(r.get("descriptors"), f"{loc}.descriptors", {"x"}, problems, False),
            constraints=tuple(constraints),
            section=str(r.get("section", "")),
        )
        if not isinstance(r.get("max_degree", 0), int) or r.get("max_degree", 0) < 0:
            problems.append(f"{loc}.max_degree: expected an integer >= 0, got {r.get('max_degree')!r}")
        for t in spec.phrasings + spec.other_phrasings:
            if "{source}" not in t or "{target}" not in t:
                problems.append(f"{loc}: phrasing {t!r} must name both {{source}} and {{target}}")
        if spec.symmetric:
            problems += _symmetric_problems(spec, loc)
        relations.append(spec)
    if not problems:  # reading templates against each other needs every relation well-formed
        from searchgym.world.wording import wording_problems

        problems += wording_problems(relations)
    return Schema(str(data.get("name", "custom")), tuple(types), tuple(relations))


def _symmetric_problems(spec: RelationSpec, loc: str) -> list[str]:
    out = []
    if spec.source != spec.target:
        out.append(
            f"{loc}: a symmetric relation links one entity type to itself, got {spec.source} -> {spec.target}"
        )
    if spec.acyclic:
        out.append(f"{loc}.acyclic: a symmetric pair is a 2-cycle by definition; remove acyclic")
    if spec.other_phrasings:
        out.append(
            f"{loc}.other_phrasings: each partner of a symmetric relation states the pair with `phrasings`; "
            "remove other_phrasings"
        )
    return out
