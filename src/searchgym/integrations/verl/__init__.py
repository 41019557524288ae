"""SearchGym and TRAC-GRPO inside verl 0.9.1 (docs/integrations.md).

Importing this package registers, with verl's own registries in this process:

| registry | names | module |
| --- | --- | --- |
| agent loops (`agent_name` column, `rollout.agent.default_agent_loop`) | `searchgym` | `agent_loop.SearchGymAgentLoop` |
| advantage estimators (`algorithm.adv_estimator`) | `searchgym_<name>` for every estimator of `searchgym.advantage` (`searchgym_trac`, `searchgym_grpo`, …) | `advantage` |
| v1 trainers (`trainer.v1.trainer_mode`) | `searchgym_sync` | `advantage.SearchGymTrainer` |

plus the tool classes of verl's tool agent (`tools.SearchGymTool`, `tools.write_tool_config`). verl imports it in
every process (driver, TaskRunner, agent-loop and reward workers) through the `verl.plugins` entry point in
SearchGym's pyproject, so `pip install searchgym` is all a Ray cluster needs; without the installed entry point, set
`VERL_USE_EXTERNAL_MODULES=searchgym.integrations.verl`.
"""

from __future__ import annotations

try:
    import verl  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        'searchgym.integrations.verl needs verl 0.9.1: pip install "torch==2.13.0" "searchgym[verl]" && '
        'pip install --no-deps "verl==0.9.1" (docs/integrations.md)'
    ) from e

from searchgym.integrations.verl import advantage, agent_loop, tools  # noqa: E402  (registers everything)

__all__ = ["advantage", "agent_loop", "tools"]
