"""The one adapter between what runs write and what the viewer shows.

Every record the viewer reads — an eval episode (`trajectories.jsonl`), a training rollout (`rollouts.jsonl`), a
demo's thin eval row (`eval_before.json`) — goes through this module and nowhere else. Key names of the env's step
info and episode summary are listed once below (`*_KEYS`), so a renamed field is a one-line fix here. Missing
optional fields degrade the display (None, empty lists), they never raise.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

# Candidate names, newest first: the first one present wins.
KIND_KEYS = ("tool", "kind")  # step info: the tool that ran ("search" | "access" | "answer" | … | "invalid")
ARG_KEYS = ("query", "url", "answer", "arg")  # its main argument, in step.args or on the step itself
HITS_KEYS = ("shown_hits", "hits")  # step info: the hits shown [{rank, url, title, snippet}]
PAGE_KEYS = ("shown_page", "page_text")  # step info: the part shown ({url, title, part, parts, text} or text)
LINES_KEYS = ("shown_lines",)  # step info: matching lines shown by a find-style tool
SCORE_NAMES = ("em", "f1", "cover_em")
SIGNAL_KEYS = (
    "done_reason",
    "terminated",
    "truncated",
    "turns",
    "searches",
    "accesses",
    "invalid_turns",
    "format_errors",
    "surfaced_recall",
    "opened_recall",
    "evidence_recall",
)

_DOC = re.compile(r"\[Doc (\d+)\]\((\S+?)\) ([^\n]*)\n?(.*?)(?=\n\n\[Doc \d+\]\(|\Z)", re.S)
_PAGE = re.compile(
    r"\A\[Page (\d+) of (\d+)\]\((\S+?)\) ([^\n]*)\n?(.*?)(?:\n\(Part \d+ of \d+; [^\n]*\))?\Z", re.S
)
_INFO = re.compile(r"\A\s*<information>|</information>\s*\Z")


def first(d: Any, names: tuple[str, ...] | str, default: Any = None) -> Any:
    """The value of the first of `names` present (and not None) in mapping `d`."""
    if not isinstance(d, dict):
        return default
    for name in (names,) if isinstance(names, str) else names:
        if d.get(name) is not None:
            return d[name]
    return default


def _float(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def _int(x: Any) -> int | None:
    try:
        return None if x is None else int(x)
    except (TypeError, ValueError):
        return None


def _golds(x: Any) -> list[str]:
    if x is None:
        return []
    return [str(g) for g in x] if isinstance(x, (list, tuple)) else [str(x)]


@dataclass
class Row:
    """One episode as the list shows, filters and sorts it."""

    i: int  # position in its run (line number of the record)
    task_id: str
    sample: int = 0
    question: str = ""
    answer: str | None = None
    gold: list[str] = field(default_factory=list)
    type: str = ""
    hops: int | None = None
    level: int | None = None
    split: str = ""
    success: bool = False
    reward: float | None = None
    em: float | None = None
    f1: float | None = None
    turns: int | None = None
    searches: int | None = None
    accesses: int | None = None
    format_ok: bool | None = None
    invalid_turns: int | None = None
    done_reason: str | None = None
    evidence_recall: float | None = None
    step: int | None = None  # training rollouts: optimizer step, group, advantage
    group: int | None = None
    advantage: float | None = None
    has_trace: bool = True  # False for demo rows without the turns

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TaskInfo:
    """What the task set says about a task (fills what a record lacks)."""

    question: str = ""
    gold: list[str] = field(default_factory=list)
    type: str = ""
    hops: int | None = None
    level: int | None = None
    split: str = ""


def episode_of(rec: dict[str, Any]) -> dict[str, Any]:
    """The env's episode summary of a record, wherever the record keeps it."""
    traj = first(rec, "trajectory", {}) or {}
    ep = first(rec, "episode")
    if ep is None:
        ep = first(traj, "episode")
    if ep is None:  # records written before the env's typed trajectory (info.episode)
        ep = first(first(traj, "info", {}), "episode", {})
    return ep if isinstance(ep, dict) else {}


def steps_of(rec: dict[str, Any]) -> list[dict[str, Any]]:
    traj = first(rec, "trajectory", {}) or {}
    steps = first(rec, "steps")
    if steps is None:
        steps = first(traj, "steps")
    if steps is None:  # records written before the env's typed trajectory (info.steps)
        steps = first(first(traj, "info", {}), "steps", [])
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def score(ep: dict[str, Any], rec: dict[str, Any], name: str) -> float | None:
    """An answer score (em / f1 / cover_em): the record's column, else the episode's (flat or under `scores`)."""
    for where in (rec, ep, first(ep, "scores", {})):
        v = _float(first(where, name))
        if v is not None:
            return v
    return None


def is_success(rec: dict[str, Any], ep: dict[str, Any], rule: str = "em") -> bool:
    """The recorded success flag when there is one (rollouts, typed episodes); else score `rule` is 1."""
    flag = first(rec, "success", first(ep, "success"))
    if flag is not None:
        return bool(flag) if isinstance(flag, bool) else (_float(flag) or 0.0) >= 0.5
    return (score(ep, rec, rule) or 0.0) >= 1.0


def row(i: int, rec: dict[str, Any], task: TaskInfo | None, rule: str = "em", default_split: str = "") -> Row:
    """A `Row` from any record kind; the task set fills in what the record does not carry."""
    task = task or TaskInfo()
    ep = episode_of(rec)
    steps = steps_of(rec)
    traj = first(rec, "trajectory", {})
    answer = first(rec, "answer", first(ep, "answer"))
    fmt = first(rec, "format_ok", first(ep, "format_ok"))
    return Row(
        i=i,
        task_id=str(first(rec, "task_id", first(traj, "task_id", ""))),
        sample=_int(first(rec, "sample")) or 0,
        question=str(first(rec, "question", task.question)),
        answer=None if answer is None else str(answer),
        gold=_golds(first(rec, "gold")) or task.gold,
        type=str(first(rec, "type", task.type)),
        hops=_int(first(rec, "hops", task.hops)),
        level=_int(first(rec, "level", task.level)),
        split=str(first(rec, "split", task.split or default_split)),
        success=is_success(rec, ep, rule),
        reward=_float(first(rec, "reward", first(ep, "reward", first(traj, "reward")))),
        em=score(ep, rec, "em"),
        f1=score(ep, rec, "f1"),
        turns=_int(first(rec, "turns", first(ep, "turns", len(steps) if steps else None))),
        searches=_int(first(rec, "searches", first(ep, "searches"))),
        accesses=_int(first(rec, "accesses", first(ep, "accesses"))),
        format_ok=None if fmt is None else bool(fmt),
        invalid_turns=_int(first(rec, "invalid_turns", first(ep, "invalid_turns"))),
        done_reason=first(rec, "done_reason", first(ep, "done_reason")),
        evidence_recall=_float(first(rec, "evidence_recall", first(ep, "evidence_recall"))),
        step=_int(first(rec, "step")),
        group=_int(first(rec, "group")),
        advantage=_float(first(rec, "advantage")),
        has_trace=bool(steps or first(traj, "turns") or first(rec, "tokens")),
    )


# ------------------------------------------------------------------------------------------- one episode


def segments(tokens: list[str], mask: list[int]) -> list[tuple[str, str]]:
    """(action text, observation text) per model turn, from decoded tokens and the env mask (1 = model)."""
    out: list[list[str]] = []
    prev = None
    for tok, m in zip(tokens, mask, strict=False):
        if m and prev != 1:
            out.append(["", ""])
        elif not m and not out:
            out.append(["", ""])
        out[-1][0 if m else 1] += tok
        prev = 1 if m else 0
    return [(a, o) for a, o in out]


def unwrap(observation: str) -> str:
    """The observation without the tag protocol's <information> wrapper."""
    return _INFO.sub("", observation or "").strip()


def parse_hits(observation: str) -> list[dict[str, Any]]:
    """Hits from a rendered search observation: `[Doc i](url) title` then the snippet."""
    return [
        {"rank": int(n), "url": url, "title": title.strip(), "snippet": body.strip()}
        for n, url, title, body in _DOC.findall(unwrap(observation))
    ]


def parse_page(observation: str) -> dict[str, Any] | None:
    """The part shown by an access observation: `[Page p of n](url) title` then the text."""
    m = _PAGE.search(unwrap(observation))
    if not m:
        return None
    part, parts, url, title, text = m.groups()
    return {"part": int(part), "parts": int(parts), "url": url, "title": title.strip(), "text": text.strip()}


def _hits(step: dict[str, Any], observation: str) -> list[dict[str, Any]]:
    shown = first(step, HITS_KEYS)
    if isinstance(shown, list) and shown:
        return [
            {
                "rank": n,
                "url": str(first(h, "url", "")),
                "title": str(first(h, "title", "")),
                "snippet": str(first(h, ("snippet", "text", "shown"), "")),
            }
            for n, h in enumerate(shown, 1)
            if isinstance(h, dict)
        ]
    parsed = parse_hits(observation)
    if parsed:
        return parsed
    return [
        {"rank": n, "url": u, "title": "", "snippet": ""} for n, u in enumerate(step.get("hit_urls") or [], 1)
    ]


def _page(step: dict[str, Any], observation: str) -> dict[str, Any] | None:
    parsed = parse_page(observation)
    text = first(step, PAGE_KEYS)
    if isinstance(text, dict):  # a typed "page shown" object
        return {**(parsed or {}), **{k: v for k, v in text.items() if v is not None}}
    if isinstance(text, str):
        return {**(parsed or {}), "text": text}
    return parsed


def _kind(step: dict[str, Any], action: str) -> str:
    kind = first(step, KIND_KEYS)
    if kind:
        return str(kind)
    for name in ("search", "access", "answer"):
        if f"<{name}>" in action or f'"{name}"' in action:
            return name
    return "invalid"


def turns(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every model turn: action text, kind, argument, error, observation, its hits or the page part shown."""
    steps = steps_of(rec)
    texts = first(first(rec, "trajectory", {}), "turns")
    if isinstance(texts, list) and texts:
        pairs = [(str(first(t, "action", "")), str(first(t, "observation", ""))) for t in texts]
    elif first(rec, "tokens") and first(rec, "env_mask"):
        pairs = segments(list(rec["tokens"]), list(rec["env_mask"]))
    else:
        pairs = []
    n = max(len(steps), len(pairs))
    out = []
    for k in range(n):
        step = steps[k] if k < len(steps) else {}
        action, observation = pairs[k] if k < len(pairs) else ("", "")
        kind = _kind(step, action)
        arg = first(first(step, "args", {}), ARG_KEYS, first(step, ARG_KEYS))
        error = first(step, "error")
        t: dict[str, Any] = {
            "n": _int(first(step, "turn")) or k + 1,
            "kind": kind,
            "arg": arg,
            "error": error,
            "format_ok": first(step, "format_ok", error is None),
            "action": action,
            "observation": unwrap(observation),
            "hits": [],
            "page": None,
            "surfaced_evidence": list(first(step, "surfaced_evidence", []) or []),
            "opened_evidence": bool(first(step, "opened_evidence", False)),
        }
        if kind == "search":
            t["hits"] = _hits(step, observation)
        elif kind == "access":
            t["page"] = _page(step, observation)
            t["url"] = first(step, "url", arg)
            t["part"] = _int(
                first(step, "page", first(first(step, "args", {}), "page", first(t["page"] or {}, "part")))
            )
        lines = first(step, LINES_KEYS)
        if isinstance(lines, list) and lines:
            t["lines"] = [str(x) for x in lines]
        out.append(t)
    return out


def reward_parts(rec: dict[str, Any], env_cfg: dict[str, Any] | None) -> dict[str, Any]:
    """The final reward and what it is made of: answer score (outcome), format gate, shaping."""
    ep = episode_of(rec)
    env_cfg = env_cfg or {}
    reward = _float(first(rec, "reward", first(ep, "reward")))
    outcome = _float(first(ep, "outcome"))
    fmt = first(ep, "format_ok", first(rec, "format_ok"))
    gate = env_cfg.get("format_gate")
    gated = fmt is False and gate is not False and outcome is not None
    shaping = None
    if reward is not None and outcome is not None and not gated:
        shaping = reward - outcome
    return {
        "reward": reward,
        "outcome": outcome,
        "outcome_score": env_cfg.get("reward"),
        "scores": {name: score(ep, rec, name) for name in SCORE_NAMES},
        "format_ok": fmt,
        "format_gate": gate,
        "gated": gated,
        "format_fail_reward": env_cfg.get("format_fail_reward"),
        "shaping": shaping,
        "surface_weight": env_cfg.get("surface_weight"),
        "open_weight": env_cfg.get("open_weight"),
        "surfaced_recall": _float(first(ep, "surfaced_recall")),
        "opened_recall": _float(first(ep, "opened_recall")),
    }


def signals(rec: dict[str, Any]) -> dict[str, Any]:
    ep = episode_of(rec)
    return {k: first(ep, k, first(rec, k)) for k in SIGNAL_KEYS}


def tokens(rec: dict[str, Any]) -> dict[str, Any] | None:
    """Decoded completion tokens with the env mask and, for TRAC rollouts, r̂ / ω / w_C per token."""
    toks = first(rec, "tokens")
    if not isinstance(toks, list) or not toks:
        return None
    mask = list(first(rec, "env_mask", [1] * len(toks)))
    trac = first(rec, "trac")
    per_token = {}
    if isinstance(trac, dict):
        for name in ("r_hat", "omega", "w_c"):
            v = trac.get(name)
            per_token[name] = [_float(x) for x in v] if isinstance(v, list) and len(v) == len(toks) else None
    return {
        "text": [str(t) for t in toks],
        "ids": first(rec, "token_ids"),
        "mask": mask,
        **per_token,
        "trac": None
        if not isinstance(trac, dict)
        else {
            "w_p": _float(trac.get("w_p")),
            "w_d": _float(trac.get("w_d")),
            "group_success": [bool(x) for x in trac.get("group_success") or []],
        },
    }
