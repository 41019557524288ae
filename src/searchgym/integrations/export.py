"""Task sets in the formats trainers read. `EXPORTERS[name](tasks, out, env_cfg)` writes; `read_back` checks.

- jsonl:    one `Task.to_dict()` per line
- parquet:  flat columns (evidence as a list of structs, meta as a JSON string)
- hf:       a `datasets.Dataset` saved with `save_to_disk` (same columns as parquet)
- verl:     parquet rows `data_source, prompt (chat messages), ability, reward_model{style, ground_truth},
            extra_info` as verl's RL datasets expect
- trl:      JSON Lines `{"prompt": [messages], "answers": [...], "task_id": ...}` (TRL conversational prompts;
            extra columns reach the reward functions)
- searchr1: JSON Lines `{"id", "question", "golden_answers"}` as Search-R1 / ASearcher data files
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from searchgym.env.config import EnvConfig
from searchgym.env.prompts import prompt_messages
from searchgym.io import atomic_dir, atomic_write_bytes, read_jsonl, write_jsonl
from searchgym.types import Task

DATA_SOURCE = "searchgym"


def flat_row(t: Task) -> dict[str, Any]:
    d = t.to_dict()
    d["meta"] = json.dumps(t.meta, sort_keys=True, ensure_ascii=False)
    return d


def chat_messages(t: Task, env_cfg: EnvConfig) -> list[dict[str, str]]:
    """The env's own prompt for this task as chat messages (what a trained policy will see)."""
    return prompt_messages(t, env_cfg)


def verl_row(t: Task, i: int, env_cfg: EnvConfig) -> dict[str, Any]:
    return {
        "data_source": DATA_SOURCE,
        "prompt": chat_messages(t, env_cfg),
        "ability": "search",
        "reward_model": {"style": "rule", "ground_truth": {"target": t.answers}},
        "extra_info": {
            "index": i,
            "split": t.split,
            "task_id": t.id,
            "type": t.type,
            "level": t.level,
            "hops": t.hops,
            "question": t.question,
            "evidence_urls": t.evidence_urls,
        },
    }


def _write_parquet(rows: list[dict[str, Any]], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    atomic_write_bytes(out, buf.getvalue())


def export_jsonl(tasks: list[Task], out: Path, env_cfg: EnvConfig) -> None:
    write_jsonl(out, (t.to_dict() for t in tasks))


def export_parquet(tasks: list[Task], out: Path, env_cfg: EnvConfig) -> None:
    _write_parquet([flat_row(t) for t in tasks], out)


def export_hf(tasks: list[Task], out: Path, env_cfg: EnvConfig) -> None:
    from datasets import Dataset

    with atomic_dir(out, overwrite=True) as tmp:
        Dataset.from_list([flat_row(t) for t in tasks]).save_to_disk(str(tmp))


def export_verl(tasks: list[Task], out: Path, env_cfg: EnvConfig) -> None:
    _write_parquet([verl_row(t, i, env_cfg) for i, t in enumerate(tasks)], out)


def export_trl(tasks: list[Task], out: Path, env_cfg: EnvConfig) -> None:
    rows = (
        {
            "prompt": chat_messages(t, env_cfg),
            "answers": t.answers,
            "task_id": t.id,
            "type": t.type,
            "level": t.level,
            "split": t.split,
        }
        for t in tasks
    )
    write_jsonl(out, rows)


def export_searchr1(tasks: list[Task], out: Path, env_cfg: EnvConfig) -> None:
    rows = (
        {
            "id": t.id,
            "question": t.question,
            "golden_answers": t.answers,
            "data_source": DATA_SOURCE,
            "split": t.split,
        }
        for t in tasks
    )
    write_jsonl(out, rows)


EXPORTERS: dict[str, Callable[[list[Task], Path, EnvConfig], None]] = {
    "jsonl": export_jsonl,
    "parquet": export_parquet,
    "hf": export_hf,
    "verl": export_verl,
    "trl": export_trl,
    "searchr1": export_searchr1,
}


def export_tasks(tasks: list[Task], fmt: str, out: str | Path, env_cfg: EnvConfig | None = None) -> Path:
    if fmt not in EXPORTERS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {sorted(EXPORTERS)}")
    out = Path(out)
    EXPORTERS[fmt](tasks, out, env_cfg or EnvConfig())
    return out


def read_back(fmt: str, path: str | Path) -> list[dict[str, Any]]:
    """Read an export with the library its consumers use (pyarrow, datasets, json)."""
    path = Path(path)
    if fmt in ("parquet", "verl"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if fmt == "hf":
        from datasets import load_from_disk

        return load_from_disk(str(path)).to_list()
    if fmt in ("jsonl", "trl", "searchr1"):
        return list(read_jsonl(path))
    raise ValueError(f"unknown export format {fmt!r}; choose one of {sorted(EXPORTERS)}")
