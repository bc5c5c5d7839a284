"""`FakeVLLM`: a tiny HTTP server on 127.0.0.1 that answers with vLLM's documented shapes, and
`fake_vllm`, which serves it for the length of a `with` block.

Why a fake, when the tests run a real vLLM (support/real_servers.py): for the faults a real server
cannot be made to produce on demand. Null, NaN and -9999.0 logprob values and fewer entries than
asked (`mode="odd"`), a completion without logprobs (`mode="no_logprobs"`), a stream that never
ends or is cut before [DONE], an answer that is not JSON or trickles in a byte at a time, a crashed
engine's HTTP 500. Everything a real server can show is tested against a real one.
"""

from __future__ import annotations

import json
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FakeVLLM:
    """A stand-in for vLLM that answers with vLLM's documented shapes (OpenAI-compatible server
    docs and `vllm/entrypoints/openai/serving_completion.py`):

    - /v1/models: `owned_by: "vllm"`, `max_model_len`; /version: `{"version"}`;
    - /tokenize -> `{count, max_model_len, tokens}`; /detokenize -> `{prompt}`;
    - /v1/completions: the legacy logprobs shape; with `return_tokens_as_token_ids` the keys are
      "token_id:N"; the sampled token comes first in `top_logprobs`; -inf is written -9999.0;
      `return_token_ids` adds `token_ids`; ending on the end token gives finish_reason "stop";
    - more than `max_logprobs` (default 20) logprobs: HTTP 400 `{"error": {"message": "Requested
      sample logprobs of N, which is greater than max allowed: 20", "type": "BadRequestError", ...}}`.

    Its "model" is a fixed rule, not a network: a character-level tokenizer (id = code point) and a
    next-token distribution that depends on the prompt's length. `mode` injects faults a real vLLM
    produces only in some configurations: "no_logprobs" (logprobs null), "odd" (-9999.0, null, NaN
    values, fewer entries than asked).
    """

    mode: str = "ok"
    max_logprobs: int = 20
    eos: int = 2
    end_after: int = 10  # the end token becomes the top pick once the sequence is this long
    requests: list = field(default_factory=list)
    # Faults of a broken or hostile server, which no real one can be made to produce on demand:
    stream: str = "ok"  # "endless": streams tokens until the client hangs up; "cut": closes after 3, no [DONE]
    raw: bytes | None = None  # the /v1/completions answer as these bytes, whatever they are
    trickle_s: float = 0.0  # write the /v1/completions answer one byte per this many seconds
    fail_status: int | None = None  # answer /v1/completions with this HTTP error (a crashed engine's 500)
    sent_chunks: int = 0  # stream chunks written
    hung_up: bool = False  # the client closed the stream before it ended
    # A hostile server's numbers and pages (tests/backends/server/test_numbers.py):
    pages: dict = field(default_factory=dict)  # path -> (status, headers dict, body bytes), answered as is
    chunk_extra: dict = field(default_factory=dict)  # merged into every stream chunk (usage, timings, metrics)
    eol: str = "\n"  # the stream's line end: "\r" is valid SSE too
    stream_text: bool = False  # each stream chunk carries its token's text (as vLLM's do), not ""
    top_by_text: int = 0  # answer this many candidates keyed by (made-up) text instead of the real top-k

    def distribution(self, ids: list[int], k: int) -> tuple[int, dict[int, float]]:
        """(the sampled id, {id: logprob} for the top k) after `ids`."""
        scores = {97 + (len(ids) + j) % 26: -0.3 * j for j in range(26)}
        if len(ids) >= self.end_after:
            scores[self.eos] = 1.0
        norm = math.log(sum(math.exp(s) for s in scores.values()))
        ranked = sorted(((i, s - norm) for i, s in scores.items()), key=lambda p: -p[1])
        return ranked[0][0], dict(ranked[:k])

    def completion(self, body: dict) -> tuple[int, dict]:
        k = body.get("logprobs") or 0
        if k > self.max_logprobs:
            return 400, {
                "error": {
                    "message": f"Requested sample logprobs of {k}, which is greater than max allowed: {self.max_logprobs}",
                    "type": "BadRequestError",
                    "param": "logprobs",
                    "code": 400,
                }
            }
        prompt = body["prompt"]
        ids = list(prompt) if isinstance(prompt, list) else [ord(c) for c in prompt]
        n = body.get("max_tokens", 16)
        choices_text, tokens, lps, tops, new = "", [], [], [], []
        finish = "length"
        for _ in range(n):
            sampled, top = self.distribution(ids + new, k)
            key = (lambda i: f"token_id:{i}") if body.get("return_tokens_as_token_ids") else chr
            table = {key(sampled): top.get(sampled, -20.0)}  # vLLM puts the sampled token first
            table.update({key(i): lp for i, lp in top.items()})
            if self.mode == "odd":
                table.update({key(1): -9999.0, key(3): None, key(4): float("nan")})
            tokens.append(key(sampled))
            lps.append(top.get(sampled, -20.0))
            tops.append(table)
            new.append(sampled)
            if sampled == self.eos:
                finish = "stop"
                break
            choices_text += chr(sampled)
        logprobs = (
            None
            if self.mode == "no_logprobs"
            else {"text_offset": list(range(len(new))), "token_logprobs": lps, "tokens": tokens, "top_logprobs": tops}
        )
        choice = {"index": 0, "text": choices_text, "logprobs": logprobs, "finish_reason": finish, "stop_reason": None}
        if body.get("return_token_ids"):
            choice["token_ids"] = new
        usage = {
            "prompt_tokens": len(ids),
            "completion_tokens": len(new),
            "total_tokens": len(ids) + len(new),
            "prompt_tokens_details": None,
        }
        return 200, {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [choice],
            "usage": usage,
        }

    def answer(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        self.requests.append((method, path, body))
        if path == "/v1/completions" and self.top_by_text and not body.get("stream"):
            status, answer = self.completion(body)
            answer["choices"][0]["logprobs"]["top_logprobs"] = [
                {f"w{j}": -0.001 * j for j in range(self.top_by_text)}
            ] * len(answer["choices"][0]["logprobs"]["tokens"])
            answer["choices"][0]["logprobs"]["tokens"] = ["w0"] * len(answer["choices"][0]["logprobs"]["tokens"])
            return status, answer
        if path == "/v1/models":
            return 200, {
                "object": "list",
                "data": [
                    {
                        "id": "org/big-model",
                        "object": "model",
                        "owned_by": "vllm",
                        "root": "org/big-model",
                        "max_model_len": 4096,
                    }
                ],
            }
        if path == "/version":
            return 200, {"version": "0.11.0"}
        if path == "/tokenize":
            text = body.get("prompt", "")
            if "messages" in body:  # vLLM applies the chat template; this stand-in's template is "<|role|>content"
                text = "".join(f"<|{m['role']}|>{m['content']}" for m in body["messages"]) + "<|assistant|>"
            tokens = [ord(c) for c in text]
            return 200, {"count": len(tokens), "max_model_len": 4096, "tokens": tokens, "token_strs": None}
        if path == "/detokenize":
            return 200, {"prompt": "".join("" if t == self.eos else chr(t) for t in body.get("tokens", []))}
        if path == "/v1/completions" and self.fail_status:
            return self.fail_status, {"error": {"message": "EngineCore encountered an issue", "code": self.fail_status}}
        if path == "/v1/completions":
            return self.completion(body)
        return 404, {"detail": "Not Found"}


@contextmanager
def fake_vllm(fake: FakeVLLM):
    """Serve `fake` over real HTTP on 127.0.0.1 (streaming included) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def _reply(self, method: str):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else {}
            if self.path in fake.pages:
                fake.requests.append((method, self.path, body))
                status, headers, data = fake.pages[self.path]
                self.send_response(status)
                for name, value in {"Content-Length": str(len(data)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                return
            status, answer = fake.answer(method, self.path, body)
            if status == 200 and body.get("stream"):
                return self._stream(answer)
            data = json.dumps(answer).encode()
            if self.path == "/v1/completions" and (fake.raw is not None or fake.trickle_s):
                return self._odd_answer(fake.raw if fake.raw is not None else data)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _odd_answer(self, data: bytes):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1] if fake.trickle_s else data)
                    self.wfile.flush()
                    if not fake.trickle_s:
                        break
                    time.sleep(fake.trickle_s)
            except OSError:
                fake.hung_up = True

        def _stream(self, answer: dict):
            """vLLM's stream: one chunk per token, each with its own logprobs, then [DONE]."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            choice = answer["choices"][0]
            lp = choice["logprobs"]
            if fake.stream in ("endless", "cut"):
                return self._faulty_stream(lp)
            for i, token in enumerate(lp["tokens"]):
                last = i == len(lp["tokens"]) - 1
                part = {
                    "text_offset": [i],
                    "token_logprobs": [lp["token_logprobs"][i]],
                    "tokens": [token],
                    "top_logprobs": [lp["top_logprobs"][i]],
                }
                chunk = {
                    "id": "cmpl-fake",
                    "object": "text_completion",
                    "choices": [
                        {
                            "index": 0,
                            "text": token if fake.stream_text else "",
                            "logprobs": part,
                            "finish_reason": choice["finish_reason"] if last else None,
                        }
                    ],
                    **fake.chunk_extra,
                }
                self.wfile.write(f"data: {json.dumps(chunk)}{fake.eol}{fake.eol}".encode())
                self.wfile.flush()
            self.wfile.write(f"data: [DONE]{fake.eol}{fake.eol}".encode())
            self.close_connection = True

        def _faulty_stream(self, lp: dict):
            """The first token again and again: for ever (until the client hangs up, at most
            100,000), or three times and then the connection closes without [DONE]."""
            part = {
                "text_offset": [0],
                "token_logprobs": lp["token_logprobs"][:1],
                "tokens": lp["tokens"][:1],
                "top_logprobs": lp["top_logprobs"][:1],
            }
            chunk = {
                "id": "cmpl-fake",
                "object": "text_completion",
                "choices": [{"index": 0, "text": "a", "logprobs": part, "finish_reason": None}],
            }
            line = f"data: {json.dumps(chunk)}\n\n".encode()
            try:
                for _ in range(3 if fake.stream == "cut" else 100_000):
                    self.wfile.write(line)
                    self.wfile.flush()
                    fake.sent_chunks += 1
                    time.sleep(0.002)
            except OSError:
                fake.hung_up = True
            self.close_connection = True

        def do_GET(self):
            self._reply("GET")

        def do_POST(self):
            self._reply("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
