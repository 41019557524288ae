"""TRAC-GRPO advantage math as pure tensor functions, the estimator registry, and teacher scoring backends.

    from searchgym.advantage import TRACBatch, TRACConfig, compute_advantages
    adv, diagnostics, state = compute_advantages("trac", batch, TRACConfig(), state)

Groups that span processes: see the top of advantage/estimators.py (`rollout_stats`, `RolloutStats`).

See docs/trac.md for the equations and every switch. Names are imported lazily so `searchgym --help` (which imports
advantage.cli) does not pay for torch.
"""

import importlib

_EXPORTS = {
    "ESTIMATORS": "estimators",
    "RolloutStats": "estimators",
    "Advantages": "estimators",
    "TRACBatch": "estimators",
    "TeacherTerms": "estimators",
    "compute": "estimators",
    "compute_advantages": "estimators",
    "register_estimator": "estimators",
    "rollout_stats": "estimators",
    "TRACConfig": "config",
    "TeacherConfig": "config",
    "TEACHERS": "teacher",
    "make_teacher": "teacher",
    "WDState": "trac",
    "load_pass_rates": "passrates",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'searchgym.advantage' has no attribute {name!r}")
    return getattr(importlib.import_module(f"searchgym.advantage.{_EXPORTS[name]}"), name)
