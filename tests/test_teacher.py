"""Teacher scoring on real tiny models: HFTeacher against a direct recomputation, OpenAITeacher against a real HTTP
server on 127.0.0.1 that answers in vLLM's completions `prompt_logprobs` format, and failure handling."""

import json
import time
from http.server import BaseHTTPRequestHandler

import pytest
import torch

from searchgym.advantage.config import TeacherConfig
from searchgym.advantage.teacher import (
    TEACHERS,
    CorruptedTeacher,
    HFTeacher,
    OpenAITeacher,
    TeacherUnavailable,
    TokenizerMismatch,
    check_same_tokenizer,
    make_teacher,
)
from searchgym.config import ConfigError
from searchgym.env.protocol import PROTOCOL_TAGS
from searchgym.models.tiny import train_tokenizer


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


def direct(teacher, seq):
    """Reference: one full forward pass, log-softmax over the whole vocabulary."""
    with torch.no_grad():
        logits = teacher(torch.tensor([seq])).logits[0, :-1].float()
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, torch.tensor(seq[1:])[:, None]).squeeze(-1)
    return logp, -(logp_all.exp() * logp_all).sum(-1), logp_all


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


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        server = self.server
        server.calls += 1
        server.auth = self.headers.get("Authorization")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = server.modes[min(server.calls - 1, len(server.modes) - 1)]
        if mode == "slow":
            time.sleep(0.5)
            mode = "ok"
        if mode == "5xx":
            return self._send(503, b'{"error": "overloaded"}')
        if mode == "garbage":
            return self._send(200, b"<html>not json")
        if mode == "wrong_shape":
            return self._send(
                200, json.dumps({"choices": [{"index": 0, "prompt_logprobs": [None]}]}).encode()
            )
        assert self.path == "/v1/completions" and body["max_tokens"] == 1
        choices = [self._choice(i, seq, body["prompt_logprobs"]) for i, seq in enumerate(body["prompt"])]
        reply = {"id": "cmpl-test", "object": "text_completion", "model": body["model"], "choices": choices}
        self._send(200, json.dumps(reply).encode())

    def _choice(self, index, seq, k):
        _, _, logp_all = direct(self.server.teacher, seq)
        prompt_logprobs = [None]
        for t in range(1, len(seq)):
            row = logp_all[t - 1]
            order = torch.argsort(row, descending=True).tolist()
            ranks = {tok_id: r + 1 for r, tok_id in enumerate(order)}
            keep = order[:k] + ([seq[t]] if ranks[seq[t]] > k else [])
            prompt_logprobs.append(
                {str(v): {"logprob": row[v].item(), "rank": ranks[v], "decoded_token": f"t{v}"} for v in keep}
            )
        return {
            "index": index,
            "text": "x",
            "logprobs": None,
            "finish_reason": "length",
            "prompt_logprobs": prompt_logprobs,
        }

    def _send(self, code, payload):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server(models, http_server):
    return http_server(_Handler, teacher=models[1], modes=["ok"], calls=0, auth=None)


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
