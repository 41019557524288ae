"""The typed records the environment hands out: the action of a turn, what an observation showed, the info of one
step, the summary of one episode, and the `Step` tuple `SearchEnv.step` returns (gymnasium's five values).

Every record is a dataclass with `to_dict()` (plain JSON types); the ones written to disk and read back
(`StepInfo`, `EpisodeSummary`) also have `from_dict()`. A renamed field fails at attribute access, not as a silent
default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple

INVALID = "invalid"  # the tool name of a turn that ran nothing


@dataclass(frozen=True)
class Action:
    """One model turn, parsed: a registered tool and its checked arguments, or `tool == "invalid"`."""

    tool: str  # a name in searchgym.env.tools.TOOLS, or "invalid"
    args: dict[str, Any] = field(default_factory=dict)  # checked arguments ({} when invalid)
    error: str | None = None  # every format problem of the turn, "; "-joined; None when the turn is clean

    @property
    def runs(self) -> bool:
        return self.tool != INVALID


@dataclass(frozen=True)
class ShownHit:
    """One search hit as the observation showed it."""

    rank: int  # 1-based, the number after "Doc"
    url: str
    title: str
    snippet: str  # the text shown under the title

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ShownPage:
    """One part of an article as the observation showed it."""

    url: str
    title: str
    part: int  # 1-based
    parts: int  # how many parts the article has
    text: str  # the part's text as shown

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class EpisodeSummary:
    done_reason: str  # "answer" | "max_turns" | "invalid" | a caller's truncate() reason, e.g. "token_budget"
    terminated: bool  # the agent answered
    truncated: bool  # stopped without an answer: turn or invalid-turn limit, or from outside (token budget)
    answer: str | None
    scores: dict[str, float]  # every score in REWARDS of the answer (0 without an answer): em, f1, cover_em
    outcome: float  # scores[cfg.reward], unshaped and ungated; cfg.no_answer_reward without an answer
    success: bool  # THE success rule: answered and scores[cfg.success_metric] >= cfg.success_threshold
    format_ok: bool  # no step had a format error
    reward: float  # outcome + shaping, then the format gate: what the trainer optimises
    turns: int
    searches: int
    accesses: int
    invalid_turns: int
    format_errors: int
    surfaced_recall: float  # share of the task's evidence URLs shown by some search
    opened_recall: float  # share of the task's evidence URLs opened with access
    evidence_recall: float  # share surfaced or opened

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpisodeSummary:
        return cls(**d)


@dataclass
class StepInfo:
    turn: int  # 1-based
    tool: str  # the tool that ran, or "invalid"
    args: dict[str, Any]  # its checked arguments
    error: str | None  # format problems of the turn plus the env's (unknown URL, missing part); None = clean
    format_ok: bool  # error is None
    surfaced_evidence: list[str]  # the task's evidence URLs among this search's hits
    opened_evidence: bool  # this access opened an evidence article
    url: str | None = None  # access / find: the article asked for
    page: int | None = None  # access: the part asked for (1-based)
    answer: str | None = None  # answer: the answer given
    observation_chars: int = 0  # length of the observation returned ("" when the episode ended)
    observation_cut: bool = False  # the tool result was cut to env.max_observation_chars
    shown_hits: list[ShownHit] = field(default_factory=list)  # search: the hits the observation showed
    shown_page: ShownPage | None = None  # access: the part the observation showed
    shown_lines: list[str] = field(default_factory=list)  # find: the matching lines the observation showed
    episode: EpisodeSummary | None = None  # set on the step that ended the episode

    @property
    def hit_urls(self) -> list[str]:
        return [h.url for h in self.shown_hits]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hit_urls"] = self.hit_urls
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepInfo:
        d = {k: v for k, v in d.items() if k != "hit_urls"}
        d["shown_hits"] = [ShownHit(**h) for h in d.get("shown_hits", ())]
        d["shown_page"] = ShownPage(**d["shown_page"]) if d.get("shown_page") else None
        d["episode"] = EpisodeSummary.from_dict(d["episode"]) if d.get("episode") else None
        return cls(**d)


class Step(NamedTuple):
    """What `SearchEnv.step` returns: gymnasium's (observation, reward, terminated, truncated, info)."""

    observation: str  # text to append before the next model turn; "" once the episode is over
    reward: float  # 0 until the episode ends, then EpisodeSummary.reward
    terminated: bool  # the agent answered
    truncated: bool  # the episode was stopped without an answer
    info: StepInfo

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated
