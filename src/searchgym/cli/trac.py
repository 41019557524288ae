"""`searchgym trac explain | check-tokenizers | score`."""

from __future__ import annotations

from pathlib import Path

import typer

trac_app = typer.Typer(
    help="TRAC-GRPO: teacher token rewards, calibrations, estimators.", no_args_is_help=True
)

EQUATIONS = """\
r_it   = clip(log piT(o_it|s_it) - log pi_old(o_it|s_it), -{clip}, {clip})      model tokens only
r^_it  = (r_it - mu_q) / (sigma_q + {norm_eps})   over valid tokens of q's group   normalize={normalize}
S_i    = mean_t r_it ;  correct_i = the env's success rule (EpisodeSummary.success)
w_P    = {wp}   use_wp={use_wp}
w_D    = {wd}   use_wd={use_wd}
w_C    = {wc}   use_wc={use_wc}
omega  = w_P * w_D * w_C
A_i    = (R_i - mean_q R) / (std_q R + {outcome_eps})   outcome_scale={outcome_scale}
Ahat   = {est}        estimator {name}: {summary}
"""


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def explain_text(cfg, estimator: str = "trac") -> str:
    """The active TRAC-GRPO equations with the config's numbers filled in (estimators from their registry)."""
    from searchgym.advantage.estimators import estimator_spec
    from searchgym.advantage.trac import WC_EQUATIONS, WD_EQUATIONS, WP_EQUATIONS

    spec = estimator_spec(estimator)
    values = cfg.to_dict()
    return EQUATIONS.format(
        wp=WP_EQUATIONS[cfg.wp_variant].format(**values),
        wd=WD_EQUATIONS[cfg.wd_variant].format(**values),
        wc=WC_EQUATIONS[cfg.wc_variant].format(**values),
        est=spec.render(cfg),
        name=spec.name,
        summary=spec.summary,
        **values,
    )


@trac_app.command("explain")
def explain(
    estimator: str = typer.Option("trac", help="advantage estimator (see `searchgym trac estimators`)"),
    config: Path = typer.Option(None, help="TRACConfig YAML (default: built-in defaults)"),
    set_: list[str] = typer.Option([], "--set", help="TRACConfig override, e.g. --set lam=0.2"),
) -> None:
    """Print the active TRAC-GRPO equations and configuration (see docs/trac.md)."""
    from searchgym.advantage.config import TRACConfig

    if any(s.split("=", 1)[0].strip() == "estimator" for s in set_):
        _fail(
            "the estimator is not a TRACConfig key: pass --estimator NAME (in training: the top-level `estimator`)"
        )
    try:
        cfg = (TRACConfig.from_yaml(config) if config else TRACConfig()).override(set_)
        text = explain_text(cfg, estimator)
    except ValueError as e:
        _fail(str(e))
    typer.echo(text)
    typer.echo(cfg.to_yaml())


@trac_app.command("estimators")
def estimators() -> None:
    """List the registered advantage estimators (a Markdown table, as in docs/trac.md)."""
    from searchgym.advantage.estimators import estimator_table

    typer.echo(estimator_table(), nl=False)


@trac_app.command("check-tokenizers")
def check_tokenizers(
    student: Path = typer.Argument(..., help="student model or tokenizer directory"),
    teacher: Path = typer.Argument(..., help="teacher model or tokenizer directory"),
) -> None:
    """Verify that a teacher can score the student's token ids (same vocabulary and special tokens)."""
    from transformers import AutoTokenizer

    from searchgym.advantage.teacher import TokenizerMismatch, check_same_tokenizer, tokenizer_fingerprint

    toks = []
    for path in (student, teacher):
        if not path.is_dir():
            _fail(f"{path} is not a directory with a saved tokenizer")
        toks.append(AutoTokenizer.from_pretrained(str(path), local_files_only=True))
    try:
        check_same_tokenizer(*toks)
    except TokenizerMismatch as e:
        _fail(str(e))
    fp = tokenizer_fingerprint(toks[0])
    typer.echo(f"ok: same tokenizer ({fp['vocab_size']} tokens, vocab sha256 {fp['vocab_sha256'][:16]}…)")


@trac_app.command("score")
def score(
    teacher: Path = typer.Option(..., help="teacher model directory (saved with save_pretrained)"),
    input_: Path = typer.Option(
        ..., "--input", help="JSONL rows with prompt_ids, completion_ids[, env_mask]"
    ),
    output: Path = typer.Option(..., help="JSONL with teacher_logp / teacher_entropy per completion token"),
    batch_size: int = typer.Option(8, help="sequences per teacher forward pass"),
    chunk: int = typer.Option(512, help="positions per LM-head chunk (bounds memory for large vocabularies)"),
) -> None:
    """Score rollouts (e.g. a `Trajectory` export) with a local teacher; observation tokens get 0."""
    from rich.progress import track

    from searchgym.advantage.teacher import HFTeacher
    from searchgym.io import read_jsonl, write_jsonl
    from searchgym.models.load import load_model_and_tokenizer

    try:
        rows = list(read_jsonl(input_))
        model, tok = load_model_and_tokenizer(teacher)
    except (OSError, ValueError) as e:
        _fail(str(e))
    scorer = HFTeacher(model, tok, batch_size=batch_size, chunk=chunk)
    out = []
    for start in track(range(0, len(rows), batch_size), description="scoring"):
        batch = rows[start : start + batch_size]
        try:
            seqs = [list(r["prompt_ids"]) + list(r["completion_ids"]) for r in batch]
            masks = [
                [0] * len(r["prompt_ids"]) + list(r.get("env_mask") or [1] * len(r["completion_ids"]))
                for r in batch
            ]
            logp, entropy = scorer.score(seqs, masks)
        except (KeyError, TypeError, ValueError) as e:
            _fail(f"{input_} rows {start}-{start + len(batch) - 1}: {e}")
        for i, r in enumerate(batch):
            lo, hi = len(r["prompt_ids"]), len(seqs[i])
            out.append(
                r | {"teacher_logp": logp[i, lo:hi].tolist(), "teacher_entropy": entropy[i, lo:hi].tolist()}
            )
    write_jsonl(output, out)
    typer.echo(f"scored {len(out)} rollouts -> {output}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main `searchgym` app."""
    app.add_typer(trac_app, name="trac")
