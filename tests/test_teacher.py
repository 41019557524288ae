"""Teacher scoring on real tiny models: HFTeacher against a direct recomputation, OpenAITeacher against a real HTTP
server on 127.0.0.1 that answers in vLLM's completions `prompt_logprobs` format, and failure handling."""

import dataclasses
import re

import pytest
import torch

from searchgym.advantage.config import TeacherConfig
from searchgym.advantage.teacher import (
    TEACHERS,
    CorruptedTeacher,
    HFTeacher,
    OpenAITeacher,
    TeacherConfigError,
    TeacherUnavailable,
    TokenizerMismatch,
    check_same_tokenizer,
    make_teacher,
)
from searchgym.config import ConfigError
from searchgym.env.protocol import PROTOCOL_TAGS
from searchgym.models.tiny import train_tokenizer
from teacher_server import VLLMTeacherHandler, direct


@pytest.fixture(scope="module")
def tok(tiny_tok):
    return tiny_tok


@pytest.fixture(scope="module")
def models(tiny_tok, tiny_llama_factory):
    return tiny_llama_factory(tiny_tok), tiny_llama_factory(tiny_tok, num_layers=2, seed=1)


@pytest.fixture(scope="module")
def rollouts(tok, models):
    """Real student samples: prompt + sampled completion, mask 1 on completion tokens only."""
    student, _ = models
    prompts = ["The capital of Norland is", "Ada Lovelace was born in", "<search>"]
    torch.manual_seed(0)
    seqs, masks = [], []
    for i, p in enumerate(prompts):
        ids = tok(p, return_tensors="pt").input_ids
        out = student.generate(ids, do_sample=True, max_new_tokens=6 + 3 * i, pad_token_id=tok.pad_token_id)
        seq = out[0].tolist()
        seqs.append(seq)
        masks.append([0] * ids.shape[1] + [1] * (len(seq) - ids.shape[1]))
    return seqs, masks


@pytest.mark.parametrize("chunk", [None, 3])
def test_hf_teacher_matches_direct_recomputation(tok, models, rollouts, chunk):
    _, teacher = models
    seqs, masks = rollouts
    scorer = HFTeacher(teacher, tok, student_tokenizer=tok, batch_size=2, chunk=chunk)
    logp, entropy = scorer.score(seqs, masks)
    assert logp.shape == (3, max(map(len, seqs)))
    for i, (seq, m) in enumerate(zip(seqs, masks, strict=True)):
        ref_logp, ref_ent, _ = direct(teacher, seq)
        keep = torch.tensor(m[1:], dtype=torch.bool)
        assert torch.allclose(logp[i, 1 : len(seq)][keep], ref_logp[keep], atol=1e-4)
        assert torch.allclose(entropy[i, 1 : len(seq)][keep], ref_ent[keep], atol=1e-4)
        assert (logp[i, : len(seq)][~torch.tensor(m, dtype=torch.bool)] == 0).all()  # prompt tokens unscored
        assert (logp[i, len(seq) :] == 0).all()


def test_hf_teacher_rejects_bad_input(tok, models):
    scorer = HFTeacher(models[1], tok)
    with pytest.raises(ValueError, match="mask has"):
        scorer.score([[1, 2, 3]], [[1, 1]])
    with pytest.raises(ValueError, match="is empty"):
        scorer.score([[1, 2], []], [[1, 1], []])
    logp, entropy = scorer.score([[5]], [[1]])  # a one-token sequence has nothing to score
    assert logp.tolist() == [[0.0]] and entropy.tolist() == [[0.0]]
    with pytest.raises(ValueError, match="outside the teacher vocabulary"):
        scorer.score([[1, 10_000]], [[1, 1]])


def test_corrupted_teacher_damages_only_scored_positions(tok, models, rollouts):
    seqs, masks = rollouts
    real = HFTeacher(models[1], tok)
    clean = real.score_full(seqs, masks)
    scored = clean.logp != 0
    shuffled = CorruptedTeacher(real, shuffle=1.0, invert=0.0, seed=0).score_full(seqs, masks)
    assert (shuffled.logp[~scored] == 0).all()  # prompt, observation and padding positions stay unscored
    assert sorted(shuffled.logp[scored].tolist()) == pytest.approx(sorted(clean.logp[scored].tolist()))
    assert not torch.equal(shuffled.logp, clean.logp)  # same values, different places
    inverted = CorruptedTeacher(real, shuffle=0.0, invert=1.0, seed=0).score_full(seqs, masks)
    mean = clean.logp[scored].mean()
    assert torch.allclose(inverted.logp[scored], (2 * mean - clean.logp[scored]).clamp(max=0.0))
    assert torch.equal(inverted.entropy, clean.entropy) and torch.equal(inverted.max_logp, clean.max_logp)
    untouched = CorruptedTeacher(real, shuffle=0.0, invert=0.0).score_full(seqs, masks)
    assert torch.equal(untouched.logp, clean.logp)
    with pytest.raises(ValueError, match="sum <= 1"):
        CorruptedTeacher(real, shuffle=0.7, invert=0.5)


def test_tokenizer_mismatch_is_refused(tok, tiny_corpus, models):
    other = train_tokenizer(
        [s.upper() for s in tiny_corpus], vocab_size=320, min_frequency=1, special_tokens=PROTOCOL_TAGS
    )
    with pytest.raises(TokenizerMismatch, match="same tokenizer"):
        check_same_tokenizer(tok, other)
    with pytest.raises(TokenizerMismatch):
        HFTeacher(models[1], other, student_tokenizer=tok)
    same = train_tokenizer(
        tiny_corpus, vocab_size=320, min_frequency=1, special_tokens=PROTOCOL_TAGS
    )  # same data -> same vocabulary
    check_same_tokenizer(tok, same)


# ------------------------------------------------------------------------------------------- vLLM-format server


@pytest.fixture
def server(models, http_server):
    return http_server(VLLMTeacherHandler, teacher=models[1], modes=["ok"], calls=0, auth=None, cap=None)


def _client(srv, tok, **kw):
    args = dict(top_k=5, retries=2, backoff=0.01, timeout=5.0, batch_size=2)
    return OpenAITeacher(f"http://127.0.0.1:{srv.server_port}", "teacher", len(tok), tok, tok, **(args | kw))


def test_openai_teacher_reads_vllm_prompt_logprobs(server, tok, models, rollouts):
    seqs, masks = rollouts
    hf = HFTeacher(models[1], tok).score_full(seqs, masks)
    full = _client(server, tok, top_k=len(tok)).score_full(seqs, masks)  # every token listed: exact entropy
    assert torch.allclose(full.logp, hf.logp, atol=1e-4)
    assert torch.allclose(full.entropy, hf.entropy, atol=1e-3)
    assert torch.allclose(full.max_logp, hf.max_logp, atol=1e-4)
    uniform = _client(server, tok, top_k=5).score_full(seqs, masks)
    lumped = _client(server, tok, top_k=5, tail="lumped").score_full(seqs, masks)
    assert torch.allclose(uniform.logp, hf.logp, atol=1e-4)  # the sampled token is always returned
    m = torch.zeros_like(hf.logp, dtype=torch.bool)
    for i, row in enumerate(masks):
        m[i, 1 : len(row)] = torch.tensor(row[1:], dtype=torch.bool)
    # top-k entropy: uniform tail is an upper bound, lumped tail a lower bound of the true entropy
    assert (uniform.entropy[m] >= hf.entropy[m] - 1e-3).all()
    assert (lumped.entropy[m] <= hf.entropy[m] + 1e-3).all()
    assert server.calls == 2 * 3  # 3 sequences in batches of 2, three clients


def test_openai_teacher_retries_then_succeeds(server, tok, rollouts):
    server.modes = ["5xx", "garbage", "ok"]
    seqs, masks = rollouts
    logp, _ = _client(server, tok, batch_size=8).score(seqs, masks)
    assert server.calls == 3 and logp.abs().sum() > 0


def test_openai_teacher_retries_timeouts(server, tok, rollouts):
    server.modes = ["slow", "ok"]
    logp, _ = _client(server, tok, batch_size=8, timeout=0.2).score(*rollouts)
    assert server.calls == 2 and logp.abs().sum() > 0


@pytest.mark.parametrize("mode", ["5xx", "garbage", "wrong_shape"])
def test_openai_teacher_gives_up_with_teacher_unavailable(server, tok, rollouts, mode):
    server.modes = [mode]
    with pytest.raises(TeacherUnavailable, match=r"failed after 3 attempt\(s\)"):
        _client(server, tok, batch_size=8).score(*rollouts)
    assert server.calls == 3


def test_top_k_over_the_servers_max_logprobs_is_a_config_error(server, tok, rollouts):
    """vLLM's default --max-logprobs is 20: a larger top_k is refused (HTTP 400) on every request, so it is a
    configuration error naming the setting, not a transient failure that would fall back to GRPO."""
    server.cap = 20
    teacher = _client(server, tok, top_k=50)
    fix = "teacher.top_k=50 exceeds the server's max_logprobs; start vLLM with --max-logprobs 50 or set teacher.top_k<=20"
    with pytest.raises(TeacherConfigError, match=re.escape(fix)) as err:
        teacher.check()
    assert "HTTP 400: Requested prompt logprobs of 50, which is greater than max allowed: 20" in str(
        err.value
    )
    assert "\n" not in str(err.value) and server.calls == 1  # one line, and a 4xx is not retried
    with pytest.raises(TeacherConfigError, match=re.escape(fix)):
        teacher.score(*rollouts)
    assert not isinstance(err.value, TeacherUnavailable)  # the trainer's GRPO fallback does not catch it
    _client(server, tok, top_k=20).check()  # at the cap: accepted
    assert server.calls == 3


def test_unknown_model_is_a_config_error(server, tok):
    server.served = "teacher"
    with pytest.raises(
        TeacherConfigError, match=r"HTTP 404: The model `techer` does not exist.*teacher\.model"
    ):
        OpenAITeacher(
            f"http://127.0.0.1:{server.server_port}", "techer", len(tok), tok, tok, retries=2
        ).check()
    assert server.calls == 1


def test_probe_of_an_unreachable_teacher_only_warns(server, tok, caplog):
    """Transient failures at start-up do not stop the run: its batches fall back to GRPO (and are counted)."""
    server.modes = ["5xx"]
    _client(server, tok).check()
    assert server.calls == 3 and "teacher probe failed (transient" in caplog.text


def test_openai_teacher_refuses_mismatched_tokenizer(tok, tiny_corpus):
    other = train_tokenizer(
        [s.upper() for s in tiny_corpus], vocab_size=320, min_frequency=1, special_tokens=PROTOCOL_TAGS
    )
    with pytest.raises(TokenizerMismatch):
        OpenAITeacher("http://127.0.0.1:1", "t", len(tok), tok, other)


# ------------------------------------------------------------------------------------ teachers by config (TEACHERS)


def test_teachers_are_chosen_by_config(tok, models, rollouts, server, tmp_path, monkeypatch):
    assert set(TEACHERS) == {"hf", "openai"}
    seqs, masks = rollouts
    models[1].save_pretrained(tmp_path / "teacher")
    tok.save_pretrained(tmp_path / "teacher")
    hf = make_teacher(TeacherConfig(kind="hf", path=str(tmp_path / "teacher")), tok)
    assert isinstance(hf, HFTeacher)
    ref = HFTeacher(models[1], tok).score_full(seqs, masks)
    assert torch.allclose(hf.score_full(seqs, masks).logp, ref.logp, atol=1e-5)  # the saved weights
    monkeypatch.setenv("TEACHER_KEY", "sk-test")
    cfg = TeacherConfig(
        kind="openai",
        endpoint=f"http://127.0.0.1:{server.server_port}",
        model="teacher",
        top_k=len(tok),
        api_key_env="TEACHER_KEY",
    )
    served = make_teacher(cfg, tok)
    assert isinstance(served, OpenAITeacher) and served.top_k == len(tok)
    assert torch.allclose(served.score_full(seqs, masks).logp, ref.logp, atol=1e-4)
    assert server.auth == "Bearer sk-test"  # the key comes from the environment, never from the config
    lumped = make_teacher(dataclasses.replace(cfg, top_k=3, tail="lumped"), tok)
    upper = make_teacher(dataclasses.replace(cfg, top_k=3), tok)
    scored = torch.tensor([m + [0] * (ref.logp.shape[1] - len(m)) for m in masks]).bool()
    low, high = lumped.score_full(seqs, masks).entropy[scored], upper.score_full(seqs, masks).entropy[scored]
    assert (low <= ref.entropy[scored] + 1e-4).all() and (high >= ref.entropy[scored] - 1e-4).all()
    assert (high - low).max() > 0.1  # the config's tail reaches the scorer
    corrupted = make_teacher(
        TeacherConfig.from_dict(
            {"kind": "hf", "path": str(tmp_path / "teacher"), "corruption": {"invert": 1.0}}
        ),
        tok,
    )
    assert isinstance(corrupted, CorruptedTeacher) and isinstance(corrupted.teacher, HFTeacher)
    assert make_teacher(TeacherConfig(), tok) is None


def test_teacher_config_errors():
    with pytest.raises(ConfigError, match="teacher.endpoint and teacher.model"):
        TeacherConfig(kind="openai")
    with pytest.raises(ConfigError, match="teacher.path"):
        TeacherConfig.from_dict({"kind": "hf"})
    with pytest.raises(ConfigError, match="sum <= 1"):
        TeacherConfig.from_dict({"kind": "hf", "path": "x", "corruption": {"shuffle": 0.7, "invert": 0.5}})
    with pytest.raises(ConfigError, match="teacher.tail='exact'"):
        TeacherConfig(tail="exact")
    with pytest.raises(ConfigError, match="environment variable name"):
        TeacherConfig(api_key_env="sk-live-123 secret")
    with pytest.raises(ValueError, match="registered"):
        make_teacher(TeacherConfig(kind="psychic"), None)
    with pytest.raises(ValueError, match="NOT_SET_ANYWHERE is not set"):
        cfg = TeacherConfig(
            kind="openai", endpoint="http://127.0.0.1:9", model="t", api_key_env="NOT_SET_ANYWHERE"
        )
        make_teacher(cfg, None)


def test_the_configured_teacher_can_also_generate(tok, models, tmp_path, monkeypatch):
    """`teacher_generator`: the same config runs the teacher as a policy (teacher pass rates)."""
    from searchgym.advantage.teacher import teacher_generator
    from searchgym.rollout.generate import SamplingParams
    from searchgym.rollout.hf import HFGenerator
    from searchgym.rollout.openai import OpenAIGenerator

    models[1].save_pretrained(tmp_path / "teacher")
    tok.save_pretrained(tmp_path / "teacher")
    gen, gen_tok = teacher_generator(TeacherConfig(kind="hf", path=str(tmp_path / "teacher")))
    prompt = [tok("The capital of Norland is").input_ids]
    params = SamplingParams(max_new_tokens=6, temperature=0)
    assert (
        gen.generate(prompt, params)[0].token_ids
        == HFGenerator(models[1], tok).generate(prompt, params)[0].token_ids
    )
    assert gen_tok.get_vocab() == tok.get_vocab()
    monkeypatch.setenv("TEACHER_KEY", "sk-test")
    cfg = TeacherConfig(
        kind="openai", endpoint="http://127.0.0.1:8000/v1", model="t", api_key_env="TEACHER_KEY"
    )
    served, _ = teacher_generator(cfg, tok)
    assert isinstance(served, OpenAIGenerator) and served.url == "http://127.0.0.1:8000/v1/completions"
    assert served.client.headers["Authorization"] == "Bearer sk-test" and tok.eos_token_id in served.eos_ids
    with pytest.raises(ConfigError, match="teacher.path"):
        teacher_generator(cfg)
