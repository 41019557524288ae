"""A task's gold evidence chain, and where an episode's searches and accesses met it.

Each evidence step names the article to read (entity, URL), the edge followed there (or the attribute read) and the
sentence of that article that states it (the edge's fact sentence; for an attribute, the article line holding the
value). Against an episode's turns each step gets:

| status | meaning |
| --- | --- |
| `read` | what the step needs was shown: the evidence sentence in any observation, or — in this article's snippet or
opened part — the name at the edge's other end (for an attribute, its value) |
| `opened` | the article was opened with access, but what the step needs was not in the part shown |
| `surfaced` | a search listed the article, but it was never opened and its snippet did not show what the step needs |
| `missed` | no search showed the article and it was never opened |

The chain *breaks* at the first step that is not `read` (without a world, at the first `missed`).
"""

from __future__ import annotations

from typing import Any

from searchgym.types import Task
from searchgym.world.store import World


def _forms(value: Any) -> list[str]:
    """How an attribute value may be written in an article: as is, or with thousands separators (20,425)."""
    forms = [str(value)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        forms.append(f"{value:,}")
    return forms


def _attribute_line(text: str, value: Any) -> str | None:
    """The first article line that shows `value`."""
    return next((line.strip() for line in text.splitlines() if any(n in line for n in _forms(value))), None)


def _shown(turn: dict[str, Any], url: str) -> str:
    """What `turn` showed of the article at `url`: its search snippet, or the part opened."""
    texts = [h["snippet"] for h in turn["hits"] if h["url"] == url]
    page = turn.get("page")
    if turn["kind"] == "access" and turn.get("url") == url and page:
        texts.append(str(page.get("text") or ""))
    return "\n".join(texts)


def _edge(world: World | None, edge_id: int | None) -> dict[str, Any] | None:
    if world is None or edge_id is None:
        return None
    edge = world_edge(world, edge_id)
    if edge is None:
        return {"id": edge_id}
    names = world.entities
    fact = world.facts.get(edge_id)
    return {
        "id": edge.id,
        "relation": edge.relation,
        "source": edge.source,
        "source_name": names[edge.source].name if edge.source in names else edge.source,
        "target": edge.target,
        "target_name": names[edge.target].name if edge.target in names else edge.target,
        "holder": world.holder(edge),
        "verified": edge.verified,
        "sentence": fact.sentence if fact else None,
    }


def world_edge(world: World, edge_id: int):
    """The edge with id `edge_id` (edges.jsonl is written in id order; fall back to a scan)."""
    edges = world.edges
    if 0 <= edge_id < len(edges) and edges[edge_id].id == edge_id:
        return edges[edge_id]
    return next((e for e in edges if e.id == edge_id), None)


def chain(task: Task, world: World | None) -> list[dict[str, Any]]:
    """The evidence steps of `task`, with names, titles, relations and sentences where the world is known."""
    out = []
    for n, step in enumerate(task.evidence, 1):
        ent = world.entities.get(step.entity) if world else None
        doc = world.doc_by_url(step.url) if world else None
        edge = _edge(world, step.edge)
        sentence = edge["sentence"] if edge else None
        value = ent.attrs.get(step.attribute) if ent and step.attribute else None
        needles = []
        if step.attribute and value is not None:
            needles = _forms(value)
            sentence = _attribute_line(doc.text, value) if doc is not None else None
        elif edge and "source_name" in edge:
            needles = [edge["target_name"] if edge["source"] == step.entity else edge["source_name"]]
        out.append(
            {
                "n": n,
                "entity": step.entity,
                "entity_name": ent.name if ent else None,
                "entity_type": ent.type if ent else None,
                "url": step.url,
                "title": doc.title if doc else None,
                "relation": step.relation,
                "attribute": step.attribute,
                "value": value,
                "edge": edge,
                "sentence": sentence,
                "needles": needles,
            }
        )
    return out


def mark(steps: list[dict[str, Any]], turns: list[dict[str, Any]]) -> dict[str, Any]:
    """Mark each evidence step with the turns that surfaced, opened and read it; find where the chain broke."""
    for s in steps:
        s["surfaced_at"] = [t["n"] for t in turns if any(h["url"] == s["url"] for h in t["hits"])]
        s["opened_at"] = [
            t["n"] for t in turns if t["kind"] == "access" and t.get("url") == s["url"] and not t["error"]
        ]
        sentence, needles = s.get("sentence"), s.get("needles") or []
        s["read_at"] = [
            t["n"]
            for t in turns
            if (sentence and sentence in t["observation"]) or any(n in _shown(t, s["url"]) for n in needles)
        ]
        if s["read_at"]:
            s["status"] = "read"
        elif s["opened_at"]:
            s["status"] = "opened"
        elif s["surfaced_at"]:
            s["status"] = "surfaced"
        else:
            s["status"] = "missed"
    broke = next(
        (s["n"] for s in steps if (s["status"] != "read" if s.get("needles") else s["status"] == "missed")),
        None,
    )
    judged = bool(steps) and all(s.get("needles") for s in steps)  # without a world only reach is known
    return {"steps": steps, "broke_at": broke, "complete": broke is None and judged}
