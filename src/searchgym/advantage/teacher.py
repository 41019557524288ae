"""Teacher scoring: a frozen teacher's log-probability and entropy at every token of the student's exact token ids.

    scorer.score(sequences, masks) -> (logp, entropy)            tensors (B, L_max), aligned with `sequences`
    scorer.score_full(sequences, masks) -> TeacherScores(logp, entropy, max_logp)
    scorer = make_teacher(TeacherConfig(kind="hf", path=...), student_tokenizer)   # by name in TEACHERS

Position t holds the teacher's view of token t given tokens < t; positions with mask 0 (prompt, observations,
padding) and position 0 are 0. A teacher that cannot answer for now (timeouts, connection errors, 5xx) raises
`TeacherUnavailable`; the trainer turns that into plain GRPO for the batch. A teacher that refuses the request (HTTP
4xx: top_k over the server's --max-logprobs, unknown model, bad key) raises `TeacherConfigError`, which stops the run;
`scorer.check()` sends one tiny probe so the trainer finds that out before step 1. A tokenizer mismatch between
student and teacher is refused at construction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import httpx
import torch

from searchgym.advantage.config import TeacherConfig
from searchgym.config import ConfigError
from searchgym.errors import SearchGymError
from searchgym.http import HTTPFailure, Retry, completions_url, post_json
from searchgym.registry import registrar

log = logging.getLogger(__name__)


class TeacherUnavailable(SearchGymError, RuntimeError):
    """The teacher could not score this batch (server down, timeouts, malformed replies after retries)."""


class TeacherConfigError(SearchGymError, ValueError):
    """The teacher server refused the request (HTTP 4xx): a setting is wrong, retrying or falling back cannot help."""


class TokenizerMismatch(SearchGymError, ValueError):
    """Student and teacher do not share a tokenizer, so teacher log-probs of student token ids are meaningless."""


class TeacherScores(NamedTuple):
    logp: torch.Tensor  # (B, L) log pi_T(token_t | tokens_<t)
    entropy: torch.Tensor  # (B, L) H of pi_T(. | tokens_<t)
    max_logp: torch.Tensor  # (B, L) max_v log pi_T(v | tokens_<t)


# ------------------------------------------------------------------------------------------ tokenizer identity


def tokenizer_fingerprint(tokenizer: Any) -> dict:
    """Vocabulary hash, size and special tokens: what must agree for token ids to mean the same thing."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    digest = hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()
    special = {name: getattr(tokenizer, f"{name}_token_id", None) for name in ("bos", "eos", "pad", "unk")}
    return {
        "vocab_sha256": digest,
        "vocab_size": len(vocab),
        "special_ids": special,
        "special_tokens": sorted(getattr(tokenizer, "all_special_tokens", [])),
    }


def check_same_tokenizer(student: Any, teacher: Any) -> None:
    """Raise TokenizerMismatch naming what differs between the two tokenizers."""
    a, b = tokenizer_fingerprint(student), tokenizer_fingerprint(teacher)
    diffs = [k for k in a if a[k] != b[k]]
    if diffs:
        detail = "; ".join(f"{k}: student={a[k]!r} teacher={b[k]!r}" for k in diffs if k != "vocab_sha256")
        raise TokenizerMismatch(
            f"student and teacher tokenizers differ ({', '.join(diffs)}{'; ' + detail if detail else ''}). "
            "TRAC scores the student's exact token ids, so the teacher must use the same tokenizer: pick a teacher "
            "from the same model family or retrain the student with the teacher's tokenizer."
        )


# -------------------------------------------------------------------------------------------------- scorers


class TeacherScorer(ABC):
    """Scores the student's token ids under a frozen teacher."""

    vocab_size: int
    tokenizer: Any  # the teacher's tokenizer, for the identity check against the student's

    @abstractmethod
    def score_full(self, sequences: list[list[int]], masks: list[list[int]]) -> TeacherScores: ...

    def check(self) -> None:
        """Raise `TeacherConfigError` if this teacher is misconfigured (a local teacher has nothing to check)."""
        return None

    def score(self, sequences: list[list[int]], masks: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score_full(sequences, masks)
        return scores.logp, scores.entropy

    def _check(self, sequences: list[list[int]], masks: list[list[int]]) -> None:
        if len(sequences) != len(masks):
            raise ValueError(f"{len(sequences)} sequences but {len(masks)} masks")
        for i, (seq, m) in enumerate(zip(sequences, masks, strict=True)):
            if not seq:
                raise ValueError(f"sequence {i} is empty; every rollout has at least its prompt tokens")
            if len(seq) != len(m):
                raise ValueError(f"sequence {i} has {len(seq)} tokens but its mask has {len(m)}")
            if seq and (min(seq) < 0 or max(seq) >= self.vocab_size):
                raise ValueError(
                    f"sequence {i} has token ids outside the teacher vocabulary [0, {self.vocab_size})"
                )


def _empty(sequences: list[list[int]]) -> TeacherScores:
    shape = (len(sequences), max((len(s) for s in sequences), default=0))
    return TeacherScores(torch.zeros(shape), torch.zeros(shape), torch.zeros(shape))


class HFTeacher(TeacherScorer):
    """A local transformers causal LM, batched and without gradients.

    The decoder runs once per batch; the LM head, log-softmax and entropy run only on the scored (mask 1) positions,
    `chunk` of them at a time, so the full (L, |V|) logits never exist: with a 32k vocabulary at 4k tokens those would
    be 0.5 GB per sequence in float32. `chunk=None` projects all scored positions of a batch at once."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        student_tokenizer: Any | None = None,
        batch_size: int = 8,
        chunk: int | None = 512,
    ):
        if student_tokenizer is not None:
            check_same_tokenizer(student_tokenizer, tokenizer)
        self.tokenizer = tokenizer
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.vocab_size = model.get_output_embeddings().weight.shape[0]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.batch_size = batch_size
        self.chunk = chunk

    @torch.no_grad()
    def score_full(self, sequences: list[list[int]], masks: list[list[int]]) -> TeacherScores:
        self._check(sequences, masks)
        out = _empty(sequences)
        head = self.model.get_output_embeddings()
        device = head.weight.device
        for start in range(0, len(sequences), self.batch_size):
            rows = list(range(start, min(start + self.batch_size, len(sequences))))
            length = max(len(sequences[i]) for i in rows)
            ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
            attn = torch.zeros((len(rows), length), dtype=torch.long)
            want = torch.zeros((len(rows), length), dtype=torch.bool)
            for j, i in enumerate(rows):
                ids[j, : len(sequences[i])] = torch.tensor(sequences[i])
                attn[j, : len(sequences[i])] = 1
                want[j, : len(masks[i])] = torch.tensor(masks[i], dtype=torch.bool)
            want[:, 0] = False  # the first token has no prefix to be scored from
            row_idx, pos_idx = want.nonzero(as_tuple=True)
            if row_idx.numel() == 0:
                continue
            hidden = self.model.get_decoder()(input_ids=ids.to(device), attention_mask=attn.to(device))
            h = hidden.last_hidden_state[row_idx.to(device), pos_idx.to(device) - 1]  # predicts token pos_idx
            targets = ids[row_idx, pos_idx].to(device)
            step = self.chunk or h.shape[0]
            values = []
            for s in range(0, h.shape[0], step):
                logp_all = torch.log_softmax(head(h[s : s + step]).float(), dim=-1)
                logp = logp_all.gather(-1, targets[s : s + step, None]).squeeze(-1)
                entropy = -logp_all.exp().mul_(logp_all).sum(-1)  # in place: two (chunk, |V|) buffers at most
                values.append(torch.stack([logp, entropy, logp_all.max(-1).values]).cpu())
                del logp_all
            values = torch.cat(values, dim=1)
            out_rows = torch.tensor(rows)[row_idx]
            for field, v in zip(out, values, strict=True):
                field[out_rows, pos_idx] = v
        return out


def _scored(masks: list[list[int]], like: torch.Tensor) -> torch.Tensor:
    """(B, L) 0/1 tensor of the positions a teacher scores: mask 1, never position 0."""
    m = torch.zeros_like(like)
    for i, row in enumerate(masks):
        m[i, : len(row)] = torch.tensor(row, dtype=m.dtype)
    m[:, :1] = 0  # the first token has no prefix to be scored from
    return m


def _apply_masks(scores: TeacherScores, masks: list[list[int]]) -> TeacherScores:
    m = _scored(masks, scores.logp)
    return TeacherScores(*(t * m for t in scores))


class _Malformed(ValueError):
    pass


class OpenAITeacher(TeacherScorer):
    """A teacher served by vLLM: POST /v1/completions with token-id prompts, `prompt_logprobs=k`, `max_tokens=1`.

    Each reply's `choices[i].prompt_logprobs[t]` maps token ids (as strings) to {"logprob", "rank", ...} for the top-k
    tokens plus the prompt's own token. Entropy is approximated from those: the known probabilities' entropy plus the
    missing mass m, spread uniformly over the other |V| - n tokens (`tail="uniform"`, an upper estimate, so w_C never
    overstates confidence) or as one lumped outcome (`tail="lumped"`, a lower estimate)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        vocab_size: int,
        student_tokenizer: Any,
        teacher_tokenizer: Any,
        top_k: int = 20,
        batch_size: int = 16,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        tail: Literal["uniform", "lumped"] = "uniform",
        api_key: str | None = None,
    ):
        check_same_tokenizer(student_tokenizer, teacher_tokenizer)
        if tail not in ("uniform", "lumped"):
            raise ValueError(f"tail must be 'uniform' or 'lumped', got {tail!r}")
        self.tokenizer = teacher_tokenizer
        self.url = completions_url(base_url)
        self.model, self.vocab_size, self.top_k, self.batch_size = model, vocab_size, top_k, batch_size
        self.retry, self.tail = Retry(retries, backoff), tail
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers)

    def check(self) -> None:
        """One 2-token probe with the real `prompt_logprobs=top_k`: a 4xx raises `TeacherConfigError` now; a transient
        failure only warns (the run starts, and its batches fall back to GRPO while the server is away)."""
        try:
            self._request([[0, 0]])
        except TeacherUnavailable as e:
            log.warning("teacher probe failed (transient; training starts anyway): %s", e)

    def score_full(self, sequences: list[list[int]], masks: list[list[int]]) -> TeacherScores:
        self._check(sequences, masks)
        out = _empty(sequences)
        for start in range(0, len(sequences), self.batch_size):
            batch = sequences[start : start + self.batch_size]
            for j, rows in enumerate(self._request(batch)):
                values = torch.tensor(rows).T  # (3, L_j): logp, entropy, max_logp
                for field, v in zip(out, values, strict=True):
                    field[start + j, : v.shape[0]] = v
        return _apply_masks(out, masks)

    def _request(self, batch: list[list[int]]) -> list[list[tuple[float, float, float]]]:
        body = {
            "model": self.model,
            "prompt": batch,
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": self.top_k,
        }
        try:
            return post_json(
                self.client, self.url, body, self.retry, parse=lambda data: self._parse(data, batch)
            )
        except HTTPFailure as e:
            if e.status is not None and 400 <= e.status < 500:
                raise TeacherConfigError(_refusal(e, self.top_k)) from e
            raise TeacherUnavailable(str(e)) from e

    def _parse(self, data: Any, batch: list[list[int]]) -> list[list[tuple[float, float, float]]]:
        try:
            choices = sorted(data["choices"], key=lambda c: c["index"])
        except (TypeError, KeyError) as e:
            raise _Malformed(f"reply has no choices[].index: {str(data)[:200]}") from e
        if len(choices) != len(batch):
            raise _Malformed(f"sent {len(batch)} prompts, got {len(choices)} choices")
        return [self._parse_choice(c, seq) for c, seq in zip(choices, batch, strict=True)]

    def _parse_choice(self, choice: dict, seq: list[int]) -> list[tuple[float, float, float]]:
        plp = choice.get("prompt_logprobs")
        if not isinstance(plp, list) or len(plp) != len(seq):
            raise _Malformed(f"prompt_logprobs missing or of the wrong length for a {len(seq)}-token prompt")
        rows = [(0.0, 0.0, 0.0)]
        for t in range(1, len(seq)):
            entry = plp[t]
            try:
                known = {int(k): float(v["logprob"]) for k, v in entry.items()}
                rows.append((known[seq[t]], *self._entropy(list(known.values()))))
            except (AttributeError, KeyError, TypeError, ValueError) as e:
                raise _Malformed(
                    f"prompt_logprobs[{t}] does not hold token {seq[t]}: {str(entry)[:200]}"
                ) from e
        return rows

    def _entropy(self, logps: list[float]) -> tuple[float, float]:
        return topk_entropy(logps, self.vocab_size, self.tail)


def topk_entropy(
    logps: list[float], vocab_size: int, tail: Literal["uniform", "lumped"] = "uniform"
) -> tuple[float, float]:
    """(entropy estimate, max log-prob) from the top-k log-probs of one position: the known tokens' entropy plus the
    missing mass m spread over the other |V| - k tokens (`uniform`: an upper bound) or as one outcome (`lumped`: a
    lower bound). bench/bench_topk_entropy.py measures both against the exact entropy."""
    probs = [math.exp(x) for x in logps]
    h = -sum(p * x for p, x in zip(probs, logps, strict=True))
    missing = max(0.0, 1.0 - sum(probs))
    if missing > 1e-12:
        others = max(1, vocab_size - len(probs)) if tail == "uniform" else 1
        h += -missing * math.log(missing / others)
    return h, max(logps)


def _refusal(e: HTTPFailure, top_k: int) -> str:
    """One line: the server's own message and the setting to change."""
    try:
        data = json.loads(e.body)
        error = data.get("error", data)
        message = str(error.get("message", error) if isinstance(error, dict) else error)
    except (ValueError, AttributeError):
        message = e.body
    message = " ".join(message.split())[:300]
    if "max allowed" in message or "max_logprobs" in message:
        cap = re.search(r"max allowed: (-?\d+)", message)
        limit = f"teacher.top_k<={cap.group(1)}" if cap else "a smaller teacher.top_k"
        fix = (
            f"teacher.top_k={top_k} exceeds the server's max_logprobs; start vLLM with --max-logprobs {top_k} "
            f"or set {limit}"
        )
    elif e.status in (401, 403):
        fix = "check teacher.api_key_env (the environment variable holding the server's API key)"
    elif e.status == 404:
        fix = "check teacher.model (the served model name) and teacher.endpoint"
    else:
        fix = "check teacher.endpoint, teacher.model and teacher.top_k"
    return f"teacher server {e.url} refused the request (HTTP {e.status}: {message}); {fix}"


class CorruptedTeacher(TeacherScorer):
    """A deliberately damaged teacher for robustness experiments: of the scored (mask 1) positions of each batch,
    a share `shuffle` get their log-prob swapped with another such position, and a disjoint share `invert` get it
    mirrored around the batch mean (confident becomes unconfident and back). Entropy and max log-prob are left as
    the real teacher's, so the confidence calibration w_C is not told about the damage. Config:
    `teacher.corruption: {shuffle: 0.3, invert: 0.3, seed: 0}` (a wrapper around any backend)."""

    def __init__(self, teacher: TeacherScorer, shuffle: float = 0.3, invert: float = 0.3, seed: int = 0):
        if not (0 <= shuffle and 0 <= invert and shuffle + invert <= 1):
            raise ValueError(
                f"teacher_corruption: shuffle={shuffle}, invert={invert}; each must be >= 0 and their sum <= 1"
            )
        self.teacher, self.shuffle, self.invert = teacher, shuffle, invert
        self.tokenizer = teacher.tokenizer
        self.vocab_size = teacher.vocab_size
        self.gen = torch.Generator().manual_seed(seed)

    def check(self) -> None:
        self.teacher.check()

    def score_full(self, sequences: list[list[int]], masks: list[list[int]]) -> TeacherScores:
        scores = self.teacher.score_full(sequences, masks)
        logp = scores.logp.clone()
        scored = _scored(masks, logp).bool()
        values = logp[scored]
        if values.numel() > 1:
            u = torch.rand(values.shape, generator=self.gen)
            swap = (u < self.shuffle).nonzero().squeeze(1)
            values[swap] = values[swap[torch.randperm(swap.numel(), generator=self.gen)]]
            flip = (u >= self.shuffle) & (u < self.shuffle + self.invert)
            values[flip] = (2 * values.mean() - values[flip]).clamp(max=0.0)
            logp[scored] = values
        return TeacherScores(logp, scores.entropy, scores.max_logp)


# ----------------------------------------------------------------------------------------------- by name

TeacherFactory = Callable[[TeacherConfig, Any], TeacherScorer]
TEACHERS: dict[str, TeacherFactory] = {}
register_teacher = registrar(TEACHERS, "teacher")


@register_teacher("hf")
def _hf_teacher(cfg: TeacherConfig, student_tokenizer: Any) -> TeacherScorer:
    from searchgym.models.load import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(cfg.path, dtype=cfg.dtype)
    return HFTeacher(model, tok, student_tokenizer=student_tokenizer, batch_size=cfg.batch_size)


@register_teacher("openai")
def _openai_teacher(cfg: TeacherConfig, student_tokenizer: Any) -> TeacherScorer:
    api_key = _api_key(cfg)
    teacher_tok = student_tokenizer
    if cfg.path:
        from transformers import AutoTokenizer

        teacher_tok = AutoTokenizer.from_pretrained(cfg.path, local_files_only=True)
    return OpenAITeacher(
        cfg.endpoint,
        cfg.model,
        vocab_size=len(teacher_tok),
        student_tokenizer=student_tokenizer,
        teacher_tokenizer=teacher_tok,
        top_k=cfg.top_k,
        batch_size=cfg.batch_size,
        timeout=cfg.timeout,
        api_key=api_key,
        tail=cfg.tail,  # type: ignore[arg-type]  (validated by TeacherConfig)
    )


def _api_key(cfg: TeacherConfig) -> str | None:
    if not cfg.api_key_env:
        return None
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise ConfigError(f"teacher.api_key_env: environment variable {cfg.api_key_env} is not set")
    return key


def teacher_generator(cfg: TeacherConfig, tokenizer: Any = None) -> tuple[Any, Any]:
    """(Generator, tokenizer) that runs the configured teacher *as a policy*, e.g. for `searchgym teacher passrate`:
    hf loads `cfg.path`; openai generates at `cfg.endpoint` (token ids in and out) with `tokenizer`, or the one at
    `cfg.path`."""
    from searchgym.rollout.generate import make_generator

    if cfg.kind == "hf":
        from searchgym.models.load import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer(cfg.path, dtype=cfg.dtype)
        return make_generator("hf", model=model, tokenizer=tok), tok
    if cfg.kind == "openai":
        if cfg.path:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(cfg.path, local_files_only=True)
        if tokenizer is None:
            raise ConfigError(
                "teacher.kind=openai: give teacher.path (a local copy of the served model's tokenizer)"
            )
        gen = make_generator(
            "openai",
            base_url=cfg.endpoint,
            model=cfg.model,
            tokenizer=tokenizer,
            timeout=cfg.timeout,
            api_key=_api_key(cfg),
        )
        return gen, tokenizer
    raise ConfigError(f"teacher.kind: {cfg.kind!r} cannot generate; use hf or openai")


def make_teacher(cfg: TeacherConfig, student_tokenizer: Any) -> TeacherScorer | None:
    """The teacher `cfg` names (None for kind ""), wrapped in `CorruptedTeacher` when `cfg.corruption` is on."""
    if not cfg.kind:
        return None
    if cfg.kind not in TEACHERS:
        raise ConfigError(f"teacher.kind: unknown teacher {cfg.kind!r}; registered: {sorted(TEACHERS)}")
    teacher = TEACHERS[cfg.kind](cfg, student_tokenizer)
    c = cfg.corruption
    return CorruptedTeacher(teacher, c.shuffle, c.invert, c.seed) if c.enabled else teacher
