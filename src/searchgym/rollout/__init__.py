"""Generation backends (`GENERATORS`: hf, openai, vllm), multi-turn rollouts with exact token bookkeeping, and
the trajectory shapes trainers consume.

    from searchgym.rollout import RolloutConfig, Trajectory, rollout

Backends are imported from their modules (`searchgym.rollout.hf` needs torch), so importing this package stays light.
"""

from searchgym.rollout.episodes import RolloutConfig, Trajectory, rollout

__all__ = ["RolloutConfig", "Trajectory", "rollout"]
