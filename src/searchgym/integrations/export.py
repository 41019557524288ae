"""Task sets and corpora in the formats other trainers read. `FORMATS[name]` writes and reads back each task format;
`export_corpus` writes the corpus for Search-R1's index builders and the pages file of ASearcher's access tool.

| format | file | rows (what the consumer reads) |
| --- | --- | --- |
| jsonl | JSON Lines | `Task.to_dict()` |
| parquet / hf | parquet / `datasets` directory | flat task columns (evidence as structs, meta as JSON) |
| verl | parquet | verl 0.9.1 `RLHFDataset` rows for the SearchGym agent loop or verl's tool agent (docs/integrations.md) |
| searchr1 | parquet | Search-R1's training rows (`scripts/data_process/nq_search.py`): FlashRAG columns + verl fields |
| asearcher | JSON Lines | ASearcher's training / evaluation rows: `id`, `question`, `answer` (+ `golden_answers`) |
| trl | JSON Lines | `GRPOTrainer(environment_factory=...)` rows: `prompt`, `task`, `answers` |

Prompts come from `searchgym.env.prompts` for the env preset named by `protocol` (tag | json | searchr1), so an
exported prompt is exactly what the environment shows.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from searchgym.env.config import PRESETS, EnvConfig
from searchgym.env.prompts import prompt_messages, tool_loop_messages
from searchgym.env.tools import TOOLS
from searchgym.errors import InputError
from searchgym.integrations.trl_env import trl_env_config, trl_row
from searchgym.io import atomic_dir, atomic_write_bytes, read_jsonl, write_jsonl
from searchgym.types import Document, Task

DATA_SOURCE = "searchgym"  # the data_source of our reward file (integrations/rewards.py)
SEARCHR1_DATA_SOURCE = "nq"  # unchanged Search-R1 scores only nq, triviaqa, popqa, hotpotqa, 2wikimultihopqa,
# musique, bamboogle (verl/trainer/main_ppo.py _select_rm_score_fn), all with the same exact-match scorer
AGENT_NAME = "searchgym"  # the agent loop registered by searchgym.integrations.verl
# verl's agent_name: our agent loop, or verl's generic tool agent with our tool classes
AGENTS = (AGENT_NAME, "tool_agent")


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    protocol: str | None = None  # env preset of the prompt (tag | json | searchr1); None = format's default
    data_source: str | None = None  # None = the format's default
    world: str = ""  # the world directory rows point at (verl: the agent loop and tools load its index)
    agent: str = AGENT_NAME  # verl: the agent_name column
    env: dict[str, Any] | tuple[str, ...] = ()  # EnvConfig overrides: {"max_turns": 16} or ("max_turns=16",)

    def env_config(self, protocol: str) -> EnvConfig:
        """The preset with the overrides applied (a bad key or value raises ConfigError naming it)."""
        cfg = EnvConfig.preset(protocol)
        return cfg.override(self.env if isinstance(self.env, dict) else list(self.env))


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    name: str
    write: Callable[[list[Task], Path, ExportOptions], None]
    read: Callable[[Path], list[dict[str, Any]]]
    protocols: tuple[str, ...] = ()  # accepted presets, the first is the default; () = no prompt
    data_source: str | None = None  # default data_source; None = the rows carry none

    def resolve(self, opts: ExportOptions) -> ExportOptions:
        """`opts` with this format's defaults filled in; refuses options the format has no use for."""
        if opts.protocol is not None and opts.protocol not in self.protocols:
            if not self.protocols:
                raise InputError(
                    f"--protocol: the {self.name} export carries no prompt; leave the option out"
                )
            raise InputError(
                f"--protocol {opts.protocol!r}: the {self.name} export takes {' | '.join(self.protocols)}"
            )
        if opts.data_source is not None and self.data_source is None:
            raise InputError(f"--data-source: the {self.name} export has no data_source column")
        if opts.data_source is not None and not opts.data_source.strip():
            raise InputError("--data-source must not be empty")
        if opts.agent not in AGENTS:
            raise InputError(f"--agent {opts.agent!r}: choose one of {' | '.join(AGENTS)}")
        protocol = opts.protocol or (self.protocols[0] if self.protocols else None)
        if opts.agent != AGENT_NAME:
            if self.name != "verl":
                raise InputError(f"--agent: the {self.name} export has no agent_name column")
            if protocol != "json":  # verl's tool agent parses hermes tool calls
                raise InputError(f"--agent {opts.agent}: verl's tool agent needs --protocol json")
        if protocol is not None and protocol not in PRESETS:
            raise InputError(f"--protocol {protocol!r}: choose one of {' | '.join(PRESETS)}")
        return dataclasses.replace(opts, protocol=protocol, data_source=opts.data_source or self.data_source)


# ------------------------------------------------------------------------------------------------------ rows


def flat_row(t: Task) -> dict[str, Any]:
    d = t.to_dict()
    d["meta"] = json.dumps(t.meta, sort_keys=True, ensure_ascii=False)
    return d


def task_json(t: Task) -> str:
    return json.dumps(t.to_dict(), ensure_ascii=False, sort_keys=True)  # what the agent loop and tools read


def verl_tools(cfg: EnvConfig) -> list[str]:
    """The tools verl's tool agent gets: every active tool (answer included, so the JSON answer form is a call)."""
    return [t for t in TOOLS if t in cfg.tools]


def verl_row(t: Task, i: int, opts: ExportOptions) -> dict[str, Any]:
    """One verl row. Every row of a file has the same nested keys (parquet structs take the union of the keys and
    give None for a missing one), and the env config and task travel as JSON strings."""
    cfg = opts.env_config(opts.protocol or "tag")  # resolve() has set the protocol
    tool_loop = opts.agent == "tool_agent"
    env = json.dumps(cfg.to_dict(), sort_keys=True)
    create = {
        "task": task_json(t),
        "env": env,
        "world": opts.world,
    }  # what the verl tools start an episode from
    return {
        "data_source": opts.data_source,
        "agent_name": opts.agent,
        "prompt": tool_loop_messages(t, cfg) if tool_loop else prompt_messages(t, cfg),
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
            "world": opts.world,
            "task": task_json(t),
            "env": env,
            "tools_kwargs": {name: {"create_kwargs": create} for name in verl_tools(cfg)},
        },
    }


def searchr1_row(t: Task, i: int, opts: ExportOptions) -> dict[str, Any]:
    """What Search-R1's nq_search.py writes (the FlashRAG columns it keeps + its verl fields), plus `answer`.
    `extra_info.index` is the GRPO group id in Search-R1 (uid = index), so it is unique within the file."""
    return {
        "id": t.id,
        "question": t.question,
        "golden_answers": t.answers,
        "answer": t.answers,
        "data_source": opts.data_source,
        "prompt": prompt_messages(t, opts.env_config(opts.protocol or "searchr1")),
        "ability": "fact-reasoning",
        "reward_model": {"style": "rule", "ground_truth": {"target": t.answers}},
        "extra_info": {"split": t.split, "index": i, "task_id": t.id},
    }


def asearcher_row(t: Task) -> dict[str, Any]:
    """ASearcher reads `id` (its qid: the first of query_id / id / qid, and its reward looks the row up by idx / qid
    / id, so only `id` is set), `question` and `answer` (a list: its F1/EM take the best gold answer)."""
    if "@" in t.id:  # ASearcher splits "<qid>@<sample>"
        raise InputError(f"task id {t.id!r} contains '@', which ASearcher uses as its sample separator")
    return {
        "id": t.id,
        "question": t.question,
        "answer": t.answers,
        "golden_answers": t.answers,
        "split": t.split,
        "type": t.type,
        "level": t.level,
        "hops": t.hops,
    }


# --------------------------------------------------------------------------------------------------- writers


def _write_parquet(rows: list[dict[str, Any]], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    atomic_write_bytes(out, buf.getvalue())


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(path))


def _trl_rows(tasks: list[Task], opts: ExportOptions) -> list[dict[str, Any]]:
    cfg = trl_env_config(opts.env_config("json").to_dict())
    return [trl_row(t, cfg) for t in tasks]


def _write_hf(tasks: list[Task], out: Path, opts: ExportOptions) -> None:
    from datasets import Dataset

    with atomic_dir(out, overwrite=True) as tmp:
        Dataset.from_list([flat_row(t) for t in tasks]).save_to_disk(str(tmp))


def _read_hf(path: Path) -> list[dict[str, Any]]:
    from datasets import load_from_disk

    return load_from_disk(str(path)).to_list()


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("jsonl", lambda ts, out, o: write_jsonl(out, (t.to_dict() for t in ts)), _read_jsonl),
        ExportFormat(
            "parquet", lambda ts, out, o: _write_parquet([flat_row(t) for t in ts], out), _read_parquet
        ),
        ExportFormat("hf", _write_hf, _read_hf),
        ExportFormat(
            "verl",
            lambda ts, out, o: _write_parquet([verl_row(t, i, o) for i, t in enumerate(ts)], out),
            _read_parquet,
            protocols=("tag", "json", "searchr1"),
            data_source=DATA_SOURCE,
        ),
        ExportFormat(
            "searchr1",
            lambda ts, out, o: _write_parquet([searchr1_row(t, i, o) for i, t in enumerate(ts)], out),
            _read_parquet,
            protocols=("searchr1",),
            data_source=SEARCHR1_DATA_SOURCE,
        ),
        ExportFormat("asearcher", lambda ts, out, o: write_jsonl(out, map(asearcher_row, ts)), _read_jsonl),
        ExportFormat("trl", lambda ts, out, o: write_jsonl(out, _trl_rows(ts, o)), _read_jsonl, ("json",)),
    )
}


def export_format(name: str) -> ExportFormat:
    if name not in FORMATS:
        raise InputError(f"unknown export format {name!r}; choose one of {' | '.join(FORMATS)}")
    return FORMATS[name]


def export_tasks(tasks: list[Task], fmt: str, out: str | Path, opts: ExportOptions | None = None) -> Path:
    """Write `tasks` in format `fmt` to `out` (atomically)."""
    spec = export_format(fmt)
    opts = spec.resolve(opts or ExportOptions())
    out = Path(out)
    spec.write(tasks, out, opts)
    return out


def read_back(fmt: str, path: str | Path) -> list[dict[str, Any]]:
    """Read an export with the library its consumers use (pyarrow, datasets, json)."""
    return export_format(fmt).read(Path(path))


# ---------------------------------------------------------------------------------------------------- corpus


def corpus_row(i: int, doc: Document) -> dict[str, Any]:
    """A Search-R1 corpus row: `id` is the row number (its BM25 and dense servers look hits up as
    corpus[int(docid)]), `contents` = title, newline, text (what our server returns too); `url` and `title` for
    ASearcher's client; our document and entity ids in their own fields."""
    return {
        "id": str(i),
        "contents": doc.contents,
        "title": doc.title,
        "url": doc.url,
        "doc_id": doc.id,
        "entity": doc.entity or "",
    }


def page_row(doc: Document) -> dict[str, Any]:
    """A page of ASearcher's access tool (`--pages_path`): keyed by `url`, the client reads `contents`."""
    return {"url": doc.url, "contents": doc.contents, "title": doc.title, "doc_id": doc.id}


def export_corpus(world_dir: str | Path, out: str | Path, pages: str | Path | None = None) -> int:
    """Write WORLD's corpus (and optionally its pages file); returns the number of documents."""
    from searchgym.world.store import check_files, read_manifest

    world_dir, out = Path(world_dir), Path(out)
    if pages is not None and Path(pages).resolve() == out.resolve():
        raise InputError(f"--pages {pages} is the corpus output too; give the pages file its own name")
    check_files(world_dir, read_manifest(world_dir))
    docs = [Document(**row) for row in read_jsonl(world_dir / "corpus.jsonl")]
    n = write_jsonl(out, (corpus_row(i, d) for i, d in enumerate(docs)))
    if pages is not None:
        write_jsonl(Path(pages), map(page_row, docs))
    return n
