"""Several learners at once: the lab under 16 concurrent clients, against one client alone.

Starts `tokenloop lesson` as its own process on 127.0.0.1, then, for a bounded time each:
1. one client steps its lab (greedy, one token per request) as fast as it can;
2. 16 clients, each with its own browser session (cookie, token ids, KV cache), do the same at once.
Every request must succeed (0 errors). The per-step latency is reported as p50/p99 for both,
with the ratio, and the total steps per second. The shared model computes one forward at a
time, so latency grows with the number of clients; throughput stays at 1x or above, since the
work around each forward (HTTP, sampling, token text) overlaps with other clients' forwards.

    .venv/bin/python bench/lab_load.py [--clients 16] [--seconds 20] [--model PATH]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    "Kubernetes pods are scheduled by the",
    "A token is not a word but",
    "The model predicts the next",
    "Training and inference are",
    "The KV cache keeps the",
    "Every request follows the same",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, model: str | None) -> subprocess.Popen:
    command = [sys.executable, "-m", "tokenloop.cli", "lesson", "--port", str(port)] + (
        ["--model", model] if model else []
    )
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"tokenloop lesson exited: {process.stderr.read().strip()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=2).raise_for_status()
            return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("tokenloop lesson did not answer within 180 s")


def learner(base: str, prompt: str, until: float, latencies: list[float], errors: list[str]) -> None:
    """One browser: its own cookie, so its own run on the server. Restarts at the lab's length limit."""
    with httpx.Client(base_url=base, timeout=120) as client:
        try:
            client.post("/api/lab/start", json={"prompt": prompt}).raise_for_status()
            while time.monotonic() < until:
                start = time.perf_counter()
                response = client.post("/api/lab/step", json={"show": 8})
                latencies.append((time.perf_counter() - start) * 1000)
                if response.status_code != 200:
                    errors.append(f"{response.status_code}: {response.text[:200]}")
                elif response.json() is None:  # the run is full: begin again
                    client.post("/api/lab/start", json={"prompt": prompt}).raise_for_status()
        except httpx.HTTPError as e:
            errors.append(f"{type(e).__name__}: {e}")


def phase(base: str, clients: int, seconds: float) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=learner, args=(base, PROMPTS[i % len(PROMPTS)], until, latencies, errors))
        for i in range(clients)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each phase runs (default 20)")
    parser.add_argument("--model", help="a local model folder (default: the embedded SmolLM2-135M-Instruct)")
    args = parser.parse_args()

    port = free_port()
    app = start_app(port, args.model)
    base = f"http://127.0.0.1:{port}"
    try:
        phase(base, 1, 2.0)  # warm-up, not counted
        single, single_errors, single_s = phase(base, 1, args.seconds)
        many, many_errors, many_s = phase(base, args.clients, args.seconds)
    finally:
        app.terminate()
        app.wait(10)

    rows = [("1 client", single, single_errors, single_s), (f"{args.clients} clients", many, many_errors, many_s)]
    print(
        f"lab steps against 127.0.0.1, {args.seconds:g} s per phase (one step = one forward with the session's KV cache)"
    )
    print(f"{'':12} {'steps':>6} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'steps/s':>8}")
    for name, latencies, errors, seconds in rows:
        print(
            f"{name:12} {len(latencies):6d} {len(errors):6d} {percentile(latencies, 50):8.1f} {percentile(latencies, 99):8.1f} "
            f"{len(latencies) / seconds:8.1f}"
        )
    p50 = percentile(many, 50) / percentile(single, 50)
    p99 = percentile(many, 99) / percentile(single, 99)
    throughput = (len(many) / many_s) / (len(single) / single_s)
    print(
        f"ratio {args.clients} clients / 1 client: p50 {p50:.1f}x, p99 {p99:.1f}x, throughput {throughput:.2f}x "
        f"(one model, one forward at a time: latency grows with clients, throughput should not drop)"
    )
    for error in (single_errors + many_errors)[:5]:
        print(f"error: {error}")
    print(
        f"mean step: 1 client {statistics.mean(single):.1f} ms, {args.clients} clients {statistics.mean(many):.1f} ms"
    )
    return 1 if single_errors or many_errors else 0


if __name__ == "__main__":
    sys.exit(main())
