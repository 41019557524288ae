"""The SearchGym agent loop for verl's agent-loop manager, registered as `searchgym` (rows name it in `agent_name`).

One `run()` is one episode: the row's task (`extra_info.task`) in the env it was exported for (`extra_info.env`),
searching the world's in-process index (`extra_info.world`, or `world:` in the agent-loop YAML) or a `searchgym
serve` endpoint (`endpoint:`). The episode is `searchgym.rollout.rollout` itself, the multi-turn token-in/token-out
loop of our own trainer, with verl's generation server behind the `Generator` interface (`VerlServerGenerator`):
model tokens keep their exact ids and log-probs (response_mask 1), observations are tokenised once (mask 0), the
episode ends on the env's rules or the response budget (`rollout.response_length`).

Output (`AgentLoopOutput`): `reward_score` = the env's episode reward; `extra_fields` = the process signals of
`EpisodeSummary` (success, outcome, format_ok, turns, searches, accesses, evidence recalls, …) and, with a `teacher:`
in the agent-loop YAML, the teacher's log-prob / entropy / max log-prob of every response token for TRAC
(`integrations.verl.advantage`); `metrics` = model and env seconds. The agent-loop YAML entry:

    - name: searchgym
      _target_: searchgym.integrations.verl.agent_loop.SearchGymAgentLoop
      endpoint: http://127.0.0.1:8000           # or world: /data/world (default: each row's extra_info.world)
      max_new_tokens: 512                       # per model turn
      teacher: {kind: openai, endpoint: http://teacher:8000, model: qwen-32b, path: /models/qwen-32b}
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

from omegaconf import DictConfig, OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register

from searchgym.advantage.config import TeacherConfig
from searchgym.advantage.teacher import TeacherScorer, make_teacher
from searchgym.env.env import SearchEnv
from searchgym.integrations.export import AGENT_NAME
from searchgym.integrations.verl import runtime
from searchgym.integrations.verl.advantage import TEACHER_FIELDS
from searchgym.rollout.adapters import to_verl
from searchgym.rollout.episodes import RolloutConfig, Trajectory, rollout
from searchgym.rollout.generate import Generation, Generator, SamplingParams, StopChecker, eos_token_ids

_teachers: dict[str, TeacherScorer | None] = {}


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


class VerlServerGenerator(Generator):
    """searchgym's `Generator` over verl's generation server (`LLMServerClient.generate`: token ids in,
    `TokenOutput(token_ids, log_probs)` out). `generate` is called from a worker thread while `loop`, verl's event
    loop, serves the requests. verl's sampling parameters are kept as they are; each turn adds `max_tokens` (the
    turn's budget) and the env's stop strings (vLLM `stop` + `include_stop_str_in_output`). The tokens after the
    first completed stop string, if a server returns any, are dropped, so a turn is exactly one action."""

    name = "verl"

    def __init__(self, server: Any, loop: asyncio.AbstractEventLoop, sampling_params: dict, tokenizer: Any):
        self.server, self.loop, self.tokenizer = server, loop, tokenizer
        self.sampling_params = dict(sampling_params)
        self.request_id = uuid4().hex  # one per trajectory: verl routes a session's turns to the same server
        self.eos = eos_token_ids(tokenizer)
        self.has_logprobs = True

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        max_new_tokens: Sequence[int] | None = None,
    ) -> list[Generation]:
        budgets = self.budgets(prompts, params, max_new_tokens)
        t0 = time.perf_counter()
        futures = [
            asyncio.run_coroutine_threadsafe(self._one(list(p), params.stop, b), self.loop)
            for p, b in zip(prompts, budgets, strict=True)
        ]
        out = [f.result() for f in futures]
        self.model_seconds += time.perf_counter() - t0  # waiting for the server: its queue and the model
        return out

    async def _one(self, prompt: list[int], stop: Sequence[str], budget: int) -> Generation:
        sp = {**self.sampling_params, "max_tokens": budget}
        if stop:
            sp |= {"stop": list(stop), "include_stop_str_in_output": True}
        out = await self.server.generate(request_id=self.request_id, prompt_ids=prompt, sampling_params=sp)
        ids = list(out.token_ids)[:budget]
        if out.log_probs is None:
            self.has_logprobs = False
        logprobs = list(out.log_probs)[: len(ids)] if out.log_probs is not None else [0.0] * len(ids)
        checker = StopChecker(self.tokenizer, stop, self.eos)
        for n in range(1, len(ids) + 1):
            reason = checker.check(ids[:n])
            if reason is not None:
                return Generation(ids[:n], logprobs[:n], reason, {"stop_reason": out.stop_reason})
        return Generation(ids, logprobs, "length", {"stop_reason": out.stop_reason})


def _teacher(cfg: dict[str, Any] | None, tokenizer: Any) -> TeacherScorer | None:
    """The teacher of the agent-loop YAML's `teacher:` (one per process; None without one)."""
    if not cfg:
        return None
    key = repr(sorted(cfg.items()))
    if key not in _teachers:
        _teachers[key] = make_teacher(TeacherConfig.from_dict(cfg, where="teacher"), tokenizer)
    return _teachers[key]


def teacher_fields(teacher: TeacherScorer | None, tr: Trajectory) -> dict[str, Any]:
    """The teacher's view of every response token (0 on observation tokens), aligned with `response_ids`; None
    for every field without a teacher (each sample carries the same keys)."""
    if teacher is None:
        return dict.fromkeys((*TEACHER_FIELDS, "teacher_vocab_size"))
    mask = [0] * len(tr.prompt_ids) + list(tr.env_mask)
    scores = teacher.score_full([tr.prompt_ids + tr.completion_ids], [mask])
    start = len(tr.prompt_ids)
    fields: dict[str, Any] = {
        name: values[0, start : start + len(tr.completion_ids)].tolist()
        for name, values in zip(TEACHER_FIELDS, scores, strict=True)
    }
    return fields | {"teacher_vocab_size": teacher.vocab_size}


@register(AGENT_NAME)
class SearchGymAgentLoop(AgentLoopBase):
    """One SearchGym episode per `run()`; see the module docstring for the YAML options."""

    def __init__(
        self,
        *args: Any,
        world: str = "",
        endpoint: str = "",
        max_new_tokens: int = 512,
        teacher: dict[str, Any] | None = None,
        env: dict[str, Any] | None = None,
        threads: int = runtime.DEFAULT_THREADS,
        tools: Any = None,
        name: str = AGENT_NAME,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.world, self.endpoint = world, endpoint
        self.max_new_tokens = int(max_new_tokens)
        self.teacher_cfg = _plain(teacher)
        self.env_overrides = _plain(env) or {}
        self.threads = int(threads)
        self.prompt_length = int(self.rollout_config.prompt_length)
        self.response_length = int(self.rollout_config.response_length)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        info = _plain(kwargs.get("extra_info")) or {}
        task, cfg = runtime.row_task(info), runtime.row_env(info, self.env_overrides)
        search = runtime.engine(self.world or info.get("world", ""), self.endpoint)
        gen = VerlServerGenerator(
            self.server_manager, asyncio.get_running_loop(), sampling_params, self.tokenizer
        )
        rcfg = RolloutConfig(
            max_new_tokens=min(self.max_new_tokens, self.response_length),
            max_total_tokens=self.response_length,
            temperature=float(sampling_params.get("temperature", 1.0)),
            top_p=float(sampling_params.get("top_p", 1.0)),
        )
        tr = (
            await runtime.in_thread(
                rollout,
                [task],
                lambda: SearchEnv(search, cfg),
                gen,
                self.tokenizer,
                rcfg,
                threads=self.threads,
            )
        )[0]
        if len(tr.prompt_ids) > self.prompt_length:
            raise ValueError(
                f"the prompt of task {task.id} is {len(tr.prompt_ids)} tokens, above rollout.prompt_length "
                f"{self.prompt_length}; raise data.max_prompt_length"
            )
        teacher = _teacher(self.teacher_cfg, self.tokenizer)
        scored = await runtime.in_thread(teacher_fields, teacher, tr, threads=self.threads)
        out = to_verl([tr], logprobs=gen.has_logprobs)[0]
        out["extra_fields"].update(scored)
        return AgentLoopOutput(**out)
