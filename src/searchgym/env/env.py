"""`SearchEnv`: one episode of an agent answering a `Task` with `search` / `access` / `answer` over a SearchEngine.

    env = SearchEnv(engine, EnvConfig())
    prompt = env.reset(task)
    obs, reward, done, info = env.step(model_turn_text)   # append `obs` before the next model turn

The reward is 0 until the episode ends; then it is the final reward (see `EnvConfig`). An episode ends on
  - "answer":   the first turn whose action is a valid <answer> / answer(),
  - "max_turns": `max_turns` model turns were taken without an answer,
  - "invalid":  `max_invalid_turns` invalid turns in a row (the model is stuck in a broken format).
When `done`, the observation is "" (nothing more is shown to the model) and `info["episode"]` holds the summary.
A caller that stops an episode itself (a token budget) calls `truncate(reason)` to get the same summary.
`step_batch` / `BatchEnv` step many episodes at once with one `engine.batch_search` call per step.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from searchgym.config import ConfigError, YamlConfig
from searchgym.env.observe import SNIPPETS, paginate, render_error, render_page, render_search, wrap
from searchgym.env.prompts import JSON_USER_PROMPT, PROMPTS
from searchgym.env.protocol import PROTOCOLS, Action, parse_action, stop_strings
from searchgym.env.rewards import REWARDS, format_ok
from searchgym.env.tools import TOOL_SCHEMAS
from searchgym.index.base import SearchEngine
from searchgym.types import SearchHit, Task

StepResult = tuple[str, float, bool, dict[str, Any]]


@dataclass
class EnvConfig(YamlConfig):
    protocol: str = (
        "tags"  # "tags": <think>/<search>/<access>/<answer> for base models; "json": tool calls for chat
    )
    max_turns: int = 8  # model turns per episode; ASearcher/SearchGym train 7B models with 32 [convention]
    topk: int = 5  # documents per search [convention]
    doc_chars: int = 300  # characters of each search hit shown [ours]
    snippet: str = "lead"  # "lead": each hit's first doc_chars characters; "best": its sentence best matching
    # the query (query-term overlap weighted by rarity in the article, like an engine's crop) [ours]
    page_chars: int = 1500  # part size when an article is opened with access [ours]
    max_query_chars: int = 512  # longer queries / URLs are invalid turns [ours]
    max_action_chars: int = 16384  # longer turns are invalid without parsing [ours]
    require_think: bool = True  # tags: a turn without <think>…</think> is a format error [convention]
    reward: str = "f1"  # outcome score, a name in searchgym.env.rewards.REWARDS: "f1" | "em" | "cover_em"
    format_gate: bool = True  # a trajectory with any format error scores `format_fail_reward` [convention]
    format_fail_reward: float = 0.0
    no_answer_reward: float = 0.0  # outcome when the episode ends without an answer [convention]
    max_invalid_turns: int = 3  # this many invalid turns in a row end the episode; 0 = never [ours]
    surface_weight: float = 0.0  # shaping: + weight * share of evidence URLs that some search showed [ours]
    open_weight: float = 0.0  # shaping: + weight * share of evidence URLs opened with access [ours]
    prompt: str = (
        ""  # custom template for the tag prompt / JSON system prompt; "" = built-in (env/prompts.py)
    )

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"env.protocol: {self.protocol!r} is not one of {list(PROTOCOLS)}")
        if self.snippet not in SNIPPETS:
            raise ConfigError(f"env.snippet: {self.snippet!r} is not one of {list(SNIPPETS)}")
        if self.reward not in REWARDS:
            raise ConfigError(f"env.reward: {self.reward!r} is not one of {sorted(REWARDS)}")
        for name in ("max_turns", "topk", "doc_chars", "page_chars", "max_query_chars", "max_action_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"env.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_invalid_turns < 0:
            raise ConfigError(f"env.max_invalid_turns must be >= 0, got {self.max_invalid_turns}")


class SearchEnv:
    """One episode at a time over `engine`. Deterministic: same engine, config, task and actions → same outputs."""

    def __init__(self, engine: SearchEngine, cfg: EnvConfig | None = None):
        self.engine = engine
        self.cfg = cfg or EnvConfig()
        self.task: Task | None = None
        self.turns: list[dict[str, Any]] = []  # the info dict of every step
        self.done = False
        self._invalid_run = 0
        self._surfaced: set[str] = set()
        self._opened: set[str] = set()

    # ---- prompts -------------------------------------------------------------------------------------------
    def reset(self, task: Task) -> str:
        """Start an episode. Returns the tag prompt (instructions + question) or the JSON user message."""
        self.task, self.turns, self.done = task, [], False
        self._invalid_run = 0
        self._surfaced, self._opened = set(), set()
        return self._fill(JSON_USER_PROMPT) if self.cfg.protocol == "json" else self._fill(self._template())

    def _template(self) -> str:
        return self.cfg.prompt or PROMPTS[self.cfg.protocol]

    def _fill(self, template: str) -> str:
        task = self._require_task()
        return template.format(question=task.question, max_turns=self.cfg.max_turns, topk=self.cfg.topk)

    def messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages for a tokenizer's chat template (system + user for json)."""
        if self.cfg.protocol == "json":
            return [
                {"role": "system", "content": self._fill(self._template())},
                {"role": "user", "content": self._fill(JSON_USER_PROMPT)},
            ]
        return [{"role": "user", "content": self._fill(self._template())}]

    def tools(self) -> list[dict[str, Any]]:
        """OpenAI function-calling schemas of search, access and answer (pass as `tools=` to a chat template)."""
        return copy.deepcopy(TOOL_SCHEMAS)

    def stop_strings(self) -> list[str]:
        return stop_strings(self.cfg.protocol)

    # ---- stepping ------------------------------------------------------------------------------------------
    def step(self, action: str) -> StepResult:
        """Run one model turn (its raw text). Returns (observation, reward, done, info)."""
        return step_batch([self], [action])[0]

    def truncate(self, reason: str = "truncated") -> dict[str, Any]:
        """End the episode from outside (e.g. the rollout's token budget ran out); it scores as "no answer".

        Returns the episode summary, also stored as `turns[-1]["episode"]` when there was a turn."""
        self._require_task()
        if self.done:
            raise RuntimeError("the episode is already over")
        self.done = True
        summary = self._summary(reason)
        if self.turns:
            self.turns[-1]["episode"] = summary
        return summary

    def _require_task(self) -> Task:
        if self.task is None:
            raise RuntimeError("call reset(task) before using the environment")
        return self.task

    def _parse(self, text: str) -> Action:
        self._require_task()
        if self.done:
            raise RuntimeError("the episode is over; call reset(task) to start another one")
        c = self.cfg
        return parse_action(
            text,
            c.protocol,
            require_think=c.require_think,
            max_query_chars=c.max_query_chars,
            max_action_chars=c.max_action_chars,
        )

    def _apply(self, act: Action, hits: list[SearchHit] | None) -> StepResult:
        task = self._require_task()
        evidence = task.evidence_urls
        errors = [act.error] if act.error else []
        info: dict[str, Any] = {"turn": len(self.turns) + 1, "kind": act.kind, "arg": act.arg}
        info.update(hit_urls=[], surfaced_evidence=[], opened_evidence=False)
        content = ""
        if act.kind == "invalid":
            content = render_error(f"invalid action: {act.error}")
        elif act.kind == "search":
            hits = hits or []
            info["query"] = act.arg
            info["hit_urls"] = [h.url for h in hits]
            info["surfaced_evidence"] = [u for u in evidence if u in info["hit_urls"]]
            self._surfaced.update(info["surfaced_evidence"])
            content = render_search(hits, self.cfg.doc_chars, self.cfg.snippet, act.arg)
        elif act.kind == "access":
            info.update(url=act.arg, page=act.page or 1)
            content = self._access(act, evidence, info, errors)
        else:
            info["answer"] = act.arg
        self._invalid_run = self._invalid_run + 1 if act.kind == "invalid" else 0
        info["error"] = "; ".join(errors) or None
        info["format_ok"] = info["error"] is None
        self.turns.append(info)
        reason = self._done_reason(act)
        if reason is None:
            return wrap(self.cfg.protocol, content), 0.0, False, info
        self.done = True
        info["episode"] = self._summary(reason)
        return "", info["episode"]["reward"], True, info

    def _access(self, act: Action, evidence: list[str], info: dict[str, Any], errors: list[str]) -> str:
        doc = self.engine.access(act.arg)
        if doc is None:
            errors.append(f"unknown URL {act.arg[:200]}")
            return render_error(f"no page at {act.arg}; open a URL from the search results")
        pages = paginate(doc.text, self.cfg.page_chars)
        page = act.page or 1
        if page > len(pages):
            errors.append(f"page {page} of a {len(pages)}-part article")
            return render_error(f"{doc.url} has {len(pages)} part(s); there is no part {page}")
        info["opened_evidence"] = doc.url in evidence
        if info["opened_evidence"]:
            self._opened.add(doc.url)
        return render_page(doc, page, pages)

    def _done_reason(self, act: Action) -> str | None:
        if act.kind == "answer":
            return "answer"
        if len(self.turns) >= self.cfg.max_turns:
            return "max_turns"
        if self.cfg.max_invalid_turns and self._invalid_run >= self.cfg.max_invalid_turns:
            return "invalid"
        return None

    def _summary(self, reason: str) -> dict[str, Any]:
        task, c = self._require_task(), self.cfg
        answer = self.turns[-1]["answer"] if reason == "answer" else None
        scores = {
            name: fn(answer, task.answers) if answer is not None else 0.0 for name, fn in REWARDS.items()
        }
        evidence = task.evidence_urls
        n = max(len(evidence), 1)
        surfaced, opened = len(self._surfaced) / n, len(self._opened) / n
        ok = format_ok(self.turns)
        outcome = scores[c.reward] if answer is not None else c.no_answer_reward
        shaped = outcome + c.surface_weight * surfaced + c.open_weight * opened
        kinds = [t["kind"] for t in self.turns]
        return {
            "done_reason": reason,
            "answer": answer,
            **scores,
            "outcome": outcome,
            "format_ok": ok,
            "reward": shaped if ok or not c.format_gate else c.format_fail_reward,
            "turns": len(self.turns),
            "searches": kinds.count("search"),
            "accesses": kinds.count("access"),
            "invalid_turns": kinds.count("invalid"),
            "format_errors": sum(t["error"] is not None for t in self.turns),
            "surfaced_recall": surfaced,
            "opened_recall": opened,
            "evidence_recall": len(self._surfaced | self._opened) / n,
        }


def step_batch(envs: Sequence[SearchEnv], actions: Sequence[str]) -> list[StepResult]:
    """Step several episodes at once; all their searches go through one `batch_search` per (engine, topk)."""
    if len(envs) != len(actions):
        raise ValueError(f"step_batch got {len(envs)} environments but {len(actions)} actions")
    acts = [env._parse(text) for env, text in zip(envs, actions, strict=True)]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (env, act) in enumerate(zip(envs, acts, strict=True)):
        if act.kind == "search":
            groups.setdefault((id(env.engine), env.cfg.topk), []).append(i)
    hits: dict[int, list[SearchHit]] = {}
    for (_, k), idx in groups.items():
        results = envs[idx[0]].engine.batch_search([acts[i].arg for i in idx], k)
        hits.update(zip(idx, results, strict=True))
    return [env._apply(act, hits.get(i)) for i, (env, act) in enumerate(zip(envs, acts, strict=True))]


class BatchEnv:
    """Many episodes over one engine. `step` takes one action per episode (None for finished ones)."""

    def __init__(self, engine: SearchEngine, cfg: EnvConfig | None = None):
        self.engine = engine
        self.cfg = cfg or EnvConfig()
        self.envs: list[SearchEnv] = []

    def reset(self, tasks: Sequence[Task]) -> list[str]:
        self.envs = [SearchEnv(self.engine, self.cfg) for _ in tasks]
        return [env.reset(task) for env, task in zip(self.envs, tasks, strict=True)]

    @property
    def active(self) -> list[int]:
        """Indices of the episodes that are still running."""
        return [i for i, env in enumerate(self.envs) if not env.done]

    @property
    def all_done(self) -> bool:
        return all(env.done for env in self.envs)

    def step(self, actions: Sequence[str | None]) -> list[StepResult | None]:
        """Step every running episode; `actions[i]` must be None exactly when episode i is already done."""
        if len(actions) != len(self.envs):
            raise ValueError(f"BatchEnv.step got {len(actions)} actions for {len(self.envs)} episodes")
        for i, (env, text) in enumerate(zip(self.envs, actions, strict=True)):
            if env.done != (text is None):
                state = "finished" if env.done else "running"
                raise ValueError(
                    f"episode {i} is {state}; pass None for finished episodes and text otherwise"
                )
        idx = [i for i, text in enumerate(actions) if text is not None]
        results = step_batch([self.envs[i] for i in idx], [actions[i] for i in idx])  # type: ignore[misc]
        out: list[StepResult | None] = [None] * len(self.envs)
        for i, res in zip(idx, results, strict=True):
            out[i] = res
        return out
