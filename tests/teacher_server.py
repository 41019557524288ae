"""A real OpenAI-compatible teacher server for tests (used with the `http_server` fixture): answers
POST /v1/completions in vLLM's `prompt_logprobs` format from a local model (`server.teacher`).

Server attributes: `modes` (per call: ok | slow | 5xx | garbage | wrong_shape, the last one repeats), `calls`,
`auth` (the last Authorization header), and optionally `cap` (vLLM's --max-logprobs: a request for more
`prompt_logprobs` gets vLLM's HTTP 400) and `served` (the served model name: any other gets vLLM's HTTP 404)."""

import json
import time
from http.server import BaseHTTPRequestHandler

import torch


def _error(message: str, kind: str, param: str, code: int) -> bytes:
    """vLLM's OpenAI-compatible error body."""
    return json.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}}).encode()


def direct(teacher, seq):
    """Reference: one full forward pass, log-softmax over the whole vocabulary."""
    with torch.no_grad():
        logits = teacher(torch.tensor([seq])).logits[0, :-1].float()
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, torch.tensor(seq[1:])[:, None]).squeeze(-1)
    return logp, -(logp_all.exp() * logp_all).sum(-1), logp_all


class VLLMTeacherHandler(BaseHTTPRequestHandler):
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
        served, cap = getattr(server, "served", None), getattr(server, "cap", None)
        k = body["prompt_logprobs"]
        if served is not None and body["model"] != served:
            message = f"The model `{body['model']}` does not exist."
            return self._send(404, _error(message, "NotFoundError", "model", 404))
        if cap is not None and k > cap:
            message = (
                f"Requested prompt logprobs of {k}, which is greater than max allowed: {cap} "
                f"(parameter=prompt_logprobs, value={k})"
            )  # vLLM 0.32's words
            return self._send(400, _error(message, "BadRequestError", "prompt_logprobs", 400))
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
