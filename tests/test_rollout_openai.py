"""OpenAIGenerator against a real HTTP server on 127.0.0.1 that serves the tiny model in vLLM's completions format."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from searchgym.env.env import EnvConfig, SearchEnv
from searchgym.rollout.episodes import RolloutConfig, rollout
from searchgym.rollout.generate import SamplingParams
from searchgym.rollout.hf import HFGenerator
from searchgym.rollout.openai import GenerationServerError, OpenAIGenerator
from test_rollout_common import TASKS, engine, tiny_agent


def tiny_server(model, tok, fail_first: int = 0, max_model_len: int = 2048) -> FastAPI:
    """A vLLM-style /v1/completions over HFGenerator; the first `fail_first` requests answer 503. Like vLLM it reports
    `max_model_len` in /v1/models, answers 400 to a longer prompt and shrinks `max_tokens` to fit."""
    app = FastAPI()
    gen = HFGenerator(model, tok)
    lock = threading.Lock()
    state = {"requests": 0}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "tiny", "object": "model", "max_model_len": max_model_len}]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        state["requests"] += 1
        if state["requests"] <= fail_first:
            return JSONResponse({"error": "warming up"}, status_code=503)
        if len(body["prompt"]) >= max_model_len:
            return JSONResponse({"error": {"message": "prompt too long"}}, status_code=400)
        params = SamplingParams(
            min(body["max_tokens"], max_model_len - len(body["prompt"])),
            body["temperature"],
            body["top_p"],
            tuple(body.get("stop") or ()),
            body["seed"],
        )
        with lock:
            (g,) = gen.generate([body["prompt"]], params)
        reason = "length" if g.finish_reason == "length" else "stop"
        logprobs = {"tokens": [f"token_id:{i}" for i in g.token_ids], "token_logprobs": g.logprobs}
        return {
            "choices": [
                {"index": 0, "text": tok.decode(g.token_ids), "logprobs": logprobs, "finish_reason": reason}
            ]
        }

    app.state.counter = state
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    model, tok = tiny_agent()
    app = tiny_server(model, tok, fail_first=1)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app.state.counter
    srv.should_exit = True
    thread.join(timeout=10)


def test_openai_rollout_matches_the_local_model(server):
    url, counter = server
    model, tok = tiny_agent()
    gen = OpenAIGenerator(url, "tiny", eos_ids=[tok.eos_token_id], concurrency=4, backoff=0.01)
    factory = lambda: SearchEnv(engine(), EnvConfig(max_turns=4))  # noqa: E731
    trajs = rollout(TASKS, factory, gen, tok, RolloutConfig(max_new_tokens=40, temperature=0))
    local = rollout(
        TASKS, factory, HFGenerator(model, tok), tok, RolloutConfig(max_new_tokens=40, temperature=0)
    )
    assert counter["requests"] >= 1 + 2 * len(TASKS)  # the first request got a 503 and was retried
    for tr, ref in zip(trajs, local, strict=True):
        assert tr.reward == 1.0
        assert tr.completion_ids == ref.completion_ids and tr.env_mask == ref.env_mask
        assert torch.allclose(torch.tensor(tr.logprobs), torch.tensor(ref.logprobs), atol=1e-4)
    gen.close()


def test_a_served_context_limit_ends_the_episode_instead_of_the_run():
    model, tok = tiny_agent()
    factory = lambda: SearchEnv(engine(), EnvConfig(max_turns=4))  # noqa: E731
    prompt_len = len(tok(factory().reset(TASKS[0]))["input_ids"])
    app = tiny_server(model, tok, max_model_len=prompt_len + 12)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    gen = OpenAIGenerator(f"http://127.0.0.1:{port}", "tiny", eos_ids=[tok.eos_token_id], backoff=0.01)
    assert gen.max_context == prompt_len + 12
    (tr,) = rollout(TASKS[:1], factory, gen, tok, RolloutConfig(max_new_tokens=40, temperature=0))
    assert (
        len(tr.prompt_ids) + len(tr.completion_ids) <= prompt_len + 12
    )  # budgeted, never sent over the limit
    assert tr.episode.done_reason == "context_limit" and tr.reward == 0.0
    gen.close()
    srv.should_exit = True
    thread.join(timeout=10)


def test_openai_generator_reports_a_dead_server():
    gen = OpenAIGenerator(f"http://127.0.0.1:{free_port()}", "none", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(GenerationServerError, match="failed after 2 attempt"):
        gen.generate([[1, 2, 3]], SamplingParams(max_new_tokens=4))
    gen.close()


def test_openai_generator_refuses_text_only_tokens(server):
    url, _ = server
    response = httpx.post(
        f"{url}/v1/completions",
        json={"prompt": [5, 6], "max_tokens": 2, "temperature": 0, "top_p": 1, "seed": 0},
    )
    choice = response.json()["choices"][0]
    choice["logprobs"]["tokens"] = ["a", "b"][: len(choice["logprobs"]["token_logprobs"])]
    from searchgym.rollout.openai import parse_choice

    with pytest.raises(GenerationServerError, match="never re-tokenised"):
        parse_choice(choice, set())
