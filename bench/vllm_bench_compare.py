"""tokenloop latency against `vllm bench serve`, on one vLLM server, same lengths, same concurrency.

vLLM's own benchmark runs first (its random dataset: prompts of random token ids of a fixed length,
a fixed output length with the end token ignored, N requests at most C at a time, one warm-up not
counted), then tokenloop's concurrent runner (`concurrency.plans` + `concurrency.measure`) sends
the same number of requests of the same lengths at the same concurrency, with a prompt of the same
token count. Both sets of medians (TTFT, TPOT, ITL) are printed with their ratio, for each level:
each tool runs `--rounds` times per level, taking turns to go first, and the median round counts
(on a shared machine one round can be twice as slow as the next).

vLLM's console script does not start in its CPU build's venv, so its bench runs from
`vllm.benchmarks.serve`'s own `add_cli_args` and `main`, in .venv-vllm's Python.

    .venv/bin/python bench/vllm_bench_compare.py [--url http://127.0.0.1:8000/v1] \
        [--levels 1,4] [--requests 16] [--output-len 32]

Without --url it starts vLLM's CPU build (the test suite's command line: tests/support/real_servers.py
`vllm_command`, float32, eager, 1 GiB of KV cache) on 127.0.0.1 and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tokenloop.backends.server import Client
from tokenloop.latency import concurrency
from tokenloop.latency.budget import model_name

ROOT = Path(__file__).resolve().parents[1]


def _vllm_python() -> Path:
    """Where `make test-servers` put vLLM's venv (the per-user build cache), else .venv-vllm."""
    try:
        return Path(json.loads((ROOT / "build" / "test-servers.json").read_text())["vllm_python"])
    except (OSError, ValueError, KeyError):
        return ROOT / ".venv-vllm" / "bin" / "python"


VLLM_PYTHON = _vllm_python()
KEYS = ("median_ttft_ms", "median_tpot_ms", "median_itl_ms", "output_throughput")
RUN_BENCH = """
import json, sys
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.benchmarks.serve import add_cli_args, main
parser = FlexibleArgumentParser()
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""


@contextmanager
def started_vllm():
    sys.path.insert(0, str(ROOT / "tests"))
    from support.launcher import free_port
    from support.real_servers import VLLM_ENV, built, vllm_command

    from tokenloop.model.files import resolve

    port = free_port()
    command = [part.replace("{port}", str(port)) for part in vllm_command(built("vllm_python"), resolve())]
    log = tempfile.NamedTemporaryFile(prefix="vllm-", suffix=".log", delete=False)
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **VLLM_ENV}
    )
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if process.poll() is not None:
                sys.exit(f"vLLM exited before it was ready; see {log.name}")
            try:
                if httpx.get(root + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        yield root
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def prompt_of(client: Client, model: str, tokens: int) -> str:
    """A prompt of exactly `tokens` tokens by the server's tokenizer (no special tokens added)."""
    words = "the history of the printing press begins with movable type in".split()
    text = ""
    for i in range(tokens * 3):
        candidate = f"{text} {words[i % len(words)]}".strip()
        count = client.call("POST", "/tokenize", {"model": model, "prompt": candidate, "add_special_tokens": False})
        if count["count"] > tokens:
            break
        text = candidate
    return text


def vllm_bench(root: str, model: str, tokenizer: str, level: int, requests: int, input_len: int, output_len: int):
    with tempfile.TemporaryDirectory() as out:
        args = [
            "--backend", "openai", "--base-url", root, "--endpoint", "/v1/completions",
            "--model", model, "--tokenizer", tokenizer,
            "--dataset-name", "random", "--random-input-len", str(input_len),
            "--random-output-len", str(output_len), "--random-range-ratio", "0",
            "--num-prompts", str(requests), "--max-concurrency", str(level), "--request-rate", "inf",
            "--ignore-eos", "--temperature", "0", "--num-warmups", "1", "--disable-tqdm",
            "--percentile-metrics", "ttft,tpot,itl,e2el",
            "--save-result", "--result-dir", out, "--result-filename", "result.json",
        ]  # fmt: skip
        env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
        done = subprocess.run([str(VLLM_PYTHON), "-c", RUN_BENCH, *args], capture_output=True, text=True, env=env)
        if done.returncode:
            sys.exit(f"vllm bench serve failed:\n{done.stderr[-3000:]}")
        return json.loads((Path(out) / "result.json").read_text()), done.stdout


def tokenloop_run(root: str, model: str, prompt: str, level: int, requests: int, output_len: int) -> dict:
    """tokenloop's runner at one level after one uncounted warm-up request: `concurrency.measure`'s
    answer (the level's metrics and the raw records)."""
    client = Client(root, timeout=120)
    try:
        warm_up = concurrency.plans(root, [1], 1, 2, "warm-up " + prompt, 60)
        concurrency.measure(client, model, warm_up, watch=False)  # not counted
        plans = concurrency.plans(root, [level], requests, output_len, prompt, 600)
        return concurrency.measure(client, model, plans, watch=False)
    finally:
        client.close()


def tokenloop_level(root: str, model: str, prompt: str, level: int, requests: int, output_len: int) -> dict:
    return tokenloop_run(root, model, prompt, level, requests, output_len)["levels"][0]["metrics"]


def compare(root: str, levels: list[int], requests: int, input_len: int, output_len: int, rounds: int) -> None:
    from tokenloop.model.files import resolve

    client = Client(root, timeout=120)
    model = model_name(client)
    prompt = prompt_of(client, model, input_len - 1)  # tokenloop's prompts begin with a number: "1.3. "
    count = client.call("POST", "/tokenize", {"model": model, "prompt": f"4.3. {prompt}"})["count"]
    client.close()
    print(f"server {root}, model {model}; {requests} requests per level, prompt {count} tokens, output {output_len}")
    print(f"each level {rounds} rounds, the two tools taking turns to go first (the machine's load drifts)")
    rows = []
    for level in levels:
        runs: dict[str, list[dict]] = {"vllm": [], "tokenloop": []}
        for r in range(rounds):
            for tool in ("tokenloop", "vllm") if r % 2 == 0 else ("vllm", "tokenloop"):
                if tool == "vllm":
                    theirs, text = vllm_bench(root, model, str(resolve()), level, requests, count, output_len)
                    print(text[text.find("=====") :].strip())
                    runs["vllm"].append(theirs)
                else:
                    runs["tokenloop"].append(tokenloop_level(root, model, prompt, level, requests, output_len))
                    print(f"tokenloop at {level}: " + ", ".join(f"{k} {runs['tokenloop'][-1][k]:.1f}" for k in KEYS))
        rows.append((level, runs))
    print()
    print(f"{'at once':>7}  {'metric':<18} {'vllm bench':>10} {'tokenloop':>10} {'ratio':>6}   (median of the rounds)")
    for level, runs in rows:
        for key in KEYS:
            theirs = statistics.median(run[key] for run in runs["vllm"])
            mine = statistics.median(run[key] for run in runs["tokenloop"])
            print(f"{level:>7}  {key:<18} {theirs:>10.1f} {mine:>10.1f} {mine / theirs:>6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running vLLM (default: start one on 127.0.0.1)")
    parser.add_argument("--levels", default="1,4", help="concurrency levels (default 1,4)")
    parser.add_argument("--requests", type=int, default=16, help="requests per level (default 16)")
    parser.add_argument("--input-len", type=int, default=16, help="prompt tokens (default 16)")
    parser.add_argument("--output-len", type=int, default=32, help="output tokens (default 32)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each tool per level (default 2)")
    args = parser.parse_args()
    levels = concurrency.parse_levels(args.levels)
    if args.url:
        compare(
            args.url.removesuffix("/v1").rstrip("/"),
            levels,
            args.requests,
            args.input_len,
            args.output_len,
            args.rounds,
        )
    else:
        with started_vllm() as root:
            compare(root, levels, args.requests, args.input_len, args.output_len, args.rounds)


if __name__ == "__main__":
    main()
