"""`SearchEnv`: one episode of an agent answering a `Task` with the active tools over a SearchEngine.

    env = SearchEnv(engine, EnvConfig())
    prompt = env.reset(task)
    obs, reward, terminated, truncated, info = env.step(model_turn_text)   # or env.step(Action("search", {...}))

The reward is 0 until the episode ends; then it is the final reward (see `episode_reward`). An episode ends on
  - "answer":    the first turn whose action is a valid answer (terminated),
  - "max_turns": `max_turns` model turns were taken without an answer (truncated),
  - "invalid":   `max_invalid_turns` invalid turns in a row, the model is stuck in a broken format (truncated),
  - `truncate(reason)`: the caller stops it, e.g. the rollout's token budget ran out (truncated).
Every ending goes through `_end`, so the summary, shaping and format gate are the same for all of them. When the
episode is over, the observation is "" and `info.episode` holds the `EpisodeSummary`.
`SearchEnv.step_batch` / `BatchEnv` step many episodes at once with one `engine.batch_search` per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from searchgym.env.config import EnvConfig
from searchgym.env.observe import fit, render_error, wrap
from searchgym.env.prompts import prompt_messages, render_prompt
from searchgym.env.protocol import check_action, parse_action, stop_strings
from searchgym.env.records import INVALID, Action, EpisodeSummary, Step, StepInfo
from searchgym.env.rewards import REWARDS, format_ok
from searchgym.env.tools import TOOLS, ToolResult, tool_schemas
from searchgym.index.base import SearchEngine
from searchgym.types import SearchHit, Task

__all__ = ["BatchEnv", "EnvConfig", "SearchEnv", "episode_reward", "step_batch"]


def episode_reward(cfg: EnvConfig, outcome: float, surfaced: float, opened: float, ok: bool) -> float:
    """The final reward of every ending: outcome + shaping, unless the format gate closes."""
    if cfg.format_gate and not ok:
        return cfg.format_fail_reward
    return outcome + cfg.surface_weight * surfaced + cfg.open_weight * opened


class SearchEnv:
    """One episode at a time over `engine`. Deterministic: same engine, config, task and actions → same outputs."""

    def __init__(self, engine: SearchEngine, cfg: EnvConfig | None = None):
        self.engine = engine
        self.cfg = cfg or EnvConfig()
        self.task: Task | None = None
        self.steps: list[StepInfo] = []
        self.summary: EpisodeSummary | None = None
        self.done = False
        self.last_opened_url: str | None = None  # the article the latest successful access showed (for find)
        self._invalid_run = 0
        self._surfaced: set[str] = set()
        self._opened: set[str] = set()

    # ---- prompts -------------------------------------------------------------------------------------------
    def reset(self, task: Task) -> str:
        """Start an episode. Returns the tag prompt (instructions + question) or the JSON user message."""
        self.task, self.steps, self.summary, self.done = task, [], None, False
        self.last_opened_url, self._invalid_run = None, 0
        self._surfaced, self._opened = set(), set()
        return render_prompt(task, self.cfg)

    def messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages for a tokenizer's chat template (system + user for json)."""
        return prompt_messages(self._require_task(), self.cfg)

    def tools(self) -> list[dict[str, Any]]:
        """OpenAI function-calling schemas of the active tools (pass as `tools=` to a chat template)."""
        return tool_schemas(self.cfg.tools)

    def stop_strings(self) -> list[str]:
        return stop_strings(self.cfg.protocol, self.cfg.tools)

    # ---- stepping ------------------------------------------------------------------------------------------
    def step(self, action: Action | str) -> Step:
        """Run one model turn: its raw text, or a typed `Action` (checked like a JSON call, never re-parsed)."""
        return SearchEnv.step_batch([self], [action])[0]

    def truncate(self, reason: str = "truncated") -> EpisodeSummary:
        """End the episode from outside (e.g. the rollout's token budget ran out); it scores as "no answer".

        Returns the episode summary, also stored as `steps[-1].episode` when there was a step."""
        self._require_task()
        if self.done:
            raise RuntimeError("the episode is already over")
        return self._end(reason)

    @staticmethod
    def step_batch(envs: Sequence[SearchEnv], actions: Sequence[Action | str]) -> list[Step]:
        """Step several episodes at once; the queries of batched tools go through one `batch_search` per
        (engine, tool, topk)."""
        if len(envs) != len(actions):
            raise ValueError(f"step_batch got {len(envs)} environments but {len(actions)} actions")
        acts = [env._prepare(a) for env, a in zip(envs, actions, strict=True)]
        hits = _batch_search(envs, acts)
        return [env._apply(act, hits.get(i)) for i, (env, act) in enumerate(zip(envs, acts, strict=True))]

    def _require_task(self) -> Task:
        if self.task is None:
            raise RuntimeError("call reset(task) before using the environment")
        return self.task

    def _prepare(self, action: Action | str) -> Action:
        """The checked action of one turn (parsed from text, or a typed action checked)."""
        self._require_task()
        if self.done:
            raise RuntimeError("the episode is over; call reset(task) to start another one")
        c = self.cfg
        if isinstance(action, Action):
            return check_action(action, c.tools, c.max_query_chars, c.max_action_chars)
        return parse_action(
            action,
            c.protocol,
            tools=c.tools,
            require_think=c.require_think,
            max_query_chars=c.max_query_chars,
            max_action_chars=c.max_action_chars,
        )

    def _apply(self, act: Action, hits: list[SearchHit] | None) -> Step:
        result = self._run(act, hits)
        info = self._record(act, result)
        reason = self._done_reason(info)
        if reason is None:
            obs, info.observation_cut = self._observation(result.content)
            info.observation_chars = len(obs)
            return Step(obs, 0.0, False, False, info)
        summary = self._end(reason)
        return Step("", summary.reward, summary.terminated, summary.truncated, info)

    def _run(self, act: Action, hits: list[SearchHit] | None) -> ToolResult:
        """Dispatch to the tool's runner; an invalid turn runs nothing and shows its error."""
        if not act.runs:
            return ToolResult(render_error(f"invalid action: {act.error}"))
        return TOOLS[act.tool].run(self, act.args, hits)

    def _record(self, act: Action, result: ToolResult) -> StepInfo:
        """Evidence bookkeeping and the step's info."""
        evidence = self._require_task().evidence_urls
        shown = {h.url for h in result.hits}
        surfaced = [u for u in evidence if u in shown]
        self._surfaced.update(surfaced)
        opened = result.shown_page is not None and result.shown_page.url in evidence
        if result.shown_page is not None:
            self.last_opened_url = result.shown_page.url
            if opened:
                self._opened.add(result.shown_page.url)
        self._invalid_run = 0 if act.runs else self._invalid_run + 1
        error = "; ".join(e for e in (act.error, result.error) if e) or None
        tool = TOOLS.get(act.tool)
        info = StepInfo(
            turn=len(self.steps) + 1,
            tool=act.tool,
            args=dict(act.args),
            error=error,
            format_ok=error is None,
            surfaced_evidence=surfaced,
            opened_evidence=opened,
            url=result.url,
            page=result.page,
            answer=act.args[tool.main] if tool is not None and tool.ends_episode else None,
            shown_hits=list(result.hits),
            shown_page=result.shown_page,
            shown_lines=list(result.lines),
        )
        self.steps.append(info)
        return info

    def _observation(self, content: str) -> tuple[str, bool]:
        """The wrapped observation, its tool result cut so the whole text fits `max_observation_chars`."""
        room = self.cfg.max_observation_chars - len(wrap(self.cfg.protocol, ""))
        content, was_cut = fit(content, room)
        return wrap(self.cfg.protocol, content), was_cut

    def _done_reason(self, info: StepInfo) -> str | None:
        if info.answer is not None:
            return "answer"
        if len(self.steps) >= self.cfg.max_turns:
            return "max_turns"
        if self.cfg.max_invalid_turns and self._invalid_run >= self.cfg.max_invalid_turns:
            return "invalid"
        return None

    def _end(self, reason: str) -> EpisodeSummary:
        self.done = True
        self.summary = self._summary(reason)
        if self.steps:
            self.steps[-1].episode = self.summary
        return self.summary

    def _summary(self, reason: str) -> EpisodeSummary:
        task, c = self._require_task(), self.cfg
        answer = self.steps[-1].answer if reason == "answer" else None
        scores = {
            name: fn(answer, task.answers) if answer is not None else 0.0 for name, fn in REWARDS.items()
        }
        n = max(len(task.evidence_urls), 1)
        surfaced, opened = len(self._surfaced) / n, len(self._opened) / n
        ok = format_ok(self.steps)
        outcome = scores[c.reward] if answer is not None else c.no_answer_reward
        tools = [s.tool for s in self.steps]
        return EpisodeSummary(
            done_reason=reason,
            terminated=answer is not None,
            truncated=answer is None,
            answer=answer,
            scores=scores,
            outcome=outcome,
            success=answer is not None and scores[c.success_metric] >= c.success_threshold,
            format_ok=ok,
            reward=episode_reward(c, outcome, surfaced, opened, ok),
            turns=len(self.steps),
            searches=tools.count("search"),
            accesses=tools.count("access"),
            invalid_turns=tools.count(INVALID),
            format_errors=sum(s.error is not None for s in self.steps),
            surfaced_recall=surfaced,
            opened_recall=opened,
            evidence_recall=len(self._surfaced | self._opened) / n,
        )


def _batch_search(envs: Sequence[SearchEnv], acts: Sequence[Action]) -> dict[int, list[SearchHit]]:
    """Hits per action index, for every action of a tool with a `batch_query`: one batch_search per group."""
    groups: dict[tuple[int, str, int], list[int]] = {}
    for i, (env, act) in enumerate(zip(envs, acts, strict=True)):
        if act.runs and TOOLS[act.tool].batch_query is not None:
            groups.setdefault((id(env.engine), act.tool, env.cfg.topk), []).append(i)
    hits: dict[int, list[SearchHit]] = {}
    for (_, tool, k), idx in groups.items():
        arg = TOOLS[tool].batch_query
        results = envs[idx[0]].engine.batch_search([acts[i].args[arg] for i in idx], k)
        hits.update(zip(idx, results, strict=True))
    return hits


step_batch = SearchEnv.step_batch


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

    def step(self, actions: Sequence[Action | str | None]) -> list[Step | None]:
        """Step every running episode; `actions[i]` must be None exactly when episode i is already done."""
        if len(actions) != len(self.envs):
            raise ValueError(f"BatchEnv.step got {len(actions)} actions for {len(self.envs)} episodes")
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            if env.done != (action is None):
                state = "finished" if env.done else "running"
                raise ValueError(
                    f"episode {i} is {state}; pass None for finished episodes and an action otherwise"
                )
        idx = [i for i, action in enumerate(actions) if action is not None]
        results = SearchEnv.step_batch([self.envs[i] for i in idx], [actions[i] for i in idx])  # type: ignore[misc]
        out: list[Step | None] = [None] * len(self.envs)
        for i, res in zip(idx, results, strict=True):
            out[i] = res
        return out
