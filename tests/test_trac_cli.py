"""`searchgym trac` commands on a saved tiny teacher."""

import json

import pytest
import torch
from typer.testing import CliRunner

from searchgym.advantage.teacher import HFTeacher
from searchgym.cli import app
from searchgym.env.protocol import PROTOCOL_TAGS
from searchgym.models.tiny import TinyModelConfig, tiny_llama, train_tokenizer

CORPUS = ["the capital of norland is vell", "ada was born in london"] * 20
runner = CliRunner()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    tok = train_tokenizer(CORPUS, vocab_size=300, min_frequency=1, special_tokens=PROTOCOL_TAGS)
    model = tiny_llama(
        tok, TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)
    )
    model.save_pretrained(root / "teacher")
    tok.save_pretrained(root / "teacher")
    other = train_tokenizer(
        [c.upper() for c in CORPUS], vocab_size=300, min_frequency=1, special_tokens=PROTOCOL_TAGS
    )
    other.save_pretrained(root / "other")
    return root, tok, model


def test_explain_prints_equations_and_config():
    result = runner.invoke(app, ["trac", "explain", "--estimator", "reward_mix", "--set", "lam=0.3"])
    assert result.exit_code == 0, result.output
    assert "R'_i = R_i + 0.3 * S_i" in result.output and "estimator reward_mix" in result.output
    clamped = runner.invoke(app, ["trac", "explain", "--set", "clamp_eta=0.5"])
    assert "A_i + 0.1 * omega * r^_it, teacher term clamped to +-0.5*|A_i|" in clamped.output
    for args, word in (
        (["--set", "wc_variant=psychic"], "wc_variant"),
        (["--estimator", "bogus"], "registered"),
        (["--set", "estimator=bogus"], "--estimator"),
    ):
        bad = runner.invoke(app, ["trac", "explain", *args])
        assert bad.exit_code == 2 and word in bad.output, args


def test_docs_list_exactly_the_registered_estimators():
    from pathlib import Path

    from searchgym.advantage.estimators import estimator_table

    listed = runner.invoke(app, ["trac", "estimators"])
    assert listed.exit_code == 0 and listed.output == estimator_table()
    docs = (Path(__file__).parents[1] / "docs" / "trac.md").read_text()
    assert estimator_table() in docs, "docs/trac.md: paste the output of `searchgym trac estimators`"


def test_check_tokenizers(saved):
    root, _, _ = saved
    ok = runner.invoke(app, ["trac", "check-tokenizers", str(root / "teacher"), str(root / "teacher")])
    assert ok.exit_code == 0 and "same tokenizer" in ok.output
    bad = runner.invoke(app, ["trac", "check-tokenizers", str(root / "teacher"), str(root / "other")])
    assert bad.exit_code == 2 and "vocab_sha256" in bad.output


def test_score_writes_teacher_logprobs(saved, tmp_path):
    root, tok, model = saved
    rows = [
        {
            "prompt_ids": tok("the capital").input_ids,
            "completion_ids": tok(" of norland").input_ids,
            "env_mask": None,
        },
        {
            "prompt_ids": tok("ada").input_ids,
            "completion_ids": tok(" was born").input_ids,
            "env_mask": [1, 0],
        },
    ]
    rows[1]["env_mask"] = [1] * (len(rows[1]["completion_ids"]) - 1) + [0]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(
        app,
        [
            "trac",
            "score",
            "--teacher",
            str(root / "teacher"),
            "--input",
            str(tmp_path / "in.jsonl"),
            "--output",
            str(tmp_path / "out.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    seq = rows[0]["prompt_ids"] + rows[0]["completion_ids"]
    ref, _ = HFTeacher(model, tok).score(
        [seq], [[0] * len(rows[0]["prompt_ids"]) + [1] * len(rows[0]["completion_ids"])]
    )
    assert torch.allclose(
        torch.tensor(out[0]["teacher_logp"]), ref[0, len(rows[0]["prompt_ids"]) :], atol=1e-5
    )
    assert out[1]["teacher_logp"][-1] == 0.0 and out[1]["teacher_entropy"][-1] == 0.0  # observation token
    missing = runner.invoke(
        app,
        [
            "trac",
            "score",
            "--teacher",
            str(root / "nope"),
            "--input",
            str(tmp_path / "in.jsonl"),
            "--output",
            str(tmp_path / "x.jsonl"),
        ],
    )
    assert missing.exit_code == 2 and "not a local directory" in missing.output


def test_cli_import_stays_light():
    import subprocess
    import sys

    code = "import sys, searchgym.cli.trac; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )
    from searchgym.advantage import TRACConfig, compute_advantages  # lazily exported

    assert callable(compute_advantages) and TRACConfig().lam == 0.1
