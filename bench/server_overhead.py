"""What the loop over HTTP costs, measured side by side in one run against a llama.cpp server.

1. Client overhead per step of the one-call-per-token loop: the request's wall time minus the time
   the server says it computed (llama.cpp's `timings`), with a kept-alive connection and with a new
   connection per call; a bare request with no work behind it (what HTTP alone costs); and
   tokenloop's own work per step (parse, sort, candidates, pick).
2. Tokens/s of the one-call-per-token loop against one streaming request, and their ratio.

Warm-up runs are not counted; each figure is the median over the repeats.

    .venv/bin/python bench/server_overhead.py [--url http://host:8080/v1] [--tokens 48] [--repeats 3]

Without --url it starts `llama-server` (built by `make test-servers`) on the embedded model's GGUF, with
2 threads and one slot, and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tokenloop.backends.server import ServerBackend
from tokenloop.loop import generate
from tokenloop.records import Done, Step

PROMPT = "Kubernetes pods are scheduled by the"


@contextmanager
def started_llama_server(threads: int):
    import socket

    from tokenloop.model.files import default_gguf

    root = Path(__file__).resolve().parents[1]
    try:  # where `make test-servers` put it (the per-user build cache)
        binary = Path(json.loads((root / "build" / "test-servers.json").read_text())["llama_server"])
    except (OSError, ValueError, KeyError):
        binary = root / "build" / "llama.cpp" / "bin" / "llama-server"
    if not binary.is_file():
        sys.exit(f"{binary} is missing: build it with `make test-servers`, or give --url")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        str(binary),
        "-m",
        str(default_gguf()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-t",
        str(threads),
        "-c",
        "2048",
        "-np",
        "1",
        "-a",
        "SmolLM2-135M-Instruct",
    ]
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(root + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                log.seek(0)
                sys.exit(f"llama-server exited: {log.read().decode(errors='replace')[-800:]}")
            time.sleep(0.2)
        yield root + "/v1", " ".join(["llama-server", "-t", str(threads), "-np", "1"])
    finally:
        process.terminate()
        process.wait(10)


def run(backend: ServerBackend, n: int) -> tuple[list[Step], Done]:
    records = list(generate(backend, backend.encode(PROMPT), max_new=n))
    return [r for r in records if isinstance(r, Step)], records[-1]


def median(values):
    return statistics.median(values) if values else float("nan")


def measure(url: str, n: int, repeats: int) -> dict:
    quiet = dict(log=lambda note: None)
    kept, fresh, streamed = (
        ServerBackend(url, **quiet),
        ServerBackend(url, keep_alive=False, **quiet),
        ServerBackend(url, stream=True, **quiet),
    )
    for backend in (kept, fresh, streamed):
        backend.eos_ids = frozenset()  # the same number of tokens everywhere (the server may still stop)
        run(backend, 4)  # warm-up, not counted
    floor = []
    for _ in range(50):  # a request with no work behind it: what HTTP itself costs, both ends
        start = time.perf_counter()
        kept.client.http.get("/health" if kept.caps.kind == "llama.cpp" else "/v1/models")
        floor.append((time.perf_counter() - start) * 1000)
    loop_rates, stream_rates, ttft = [], [], []
    http_kept, http_fresh, own, server = [], [], [], []
    for _ in range(repeats):  # interleaved, so a busy moment hits both ways alike
        steps, done = run(kept, n)
        loop_rates.append(done.tokens_per_s)
        http_kept += [s.extra["client_ms"] for s in steps[1:]]
        own += [s.ms - s.extra["request_ms"] for s in steps[1:]]
        server += [s.extra["server_ms"] for s in steps[1:]]
        steps, _ = run(fresh, n)
        http_fresh += [s.extra["client_ms"] for s in steps[1:]]
        steps, done = run(streamed, n)
        stream_rates.append(done.tokens_per_s)
        ttft.append(steps[0].extra["ttft_ms"])
    return {
        "tokens": len(steps),
        "loop_tps": median(loop_rates),
        "stream_tps": median(stream_rates),
        "ttft_ms": median(ttft),
        "server_ms": median(server),
        "http_kept_ms": median(http_kept),
        "http_fresh_ms": median(http_fresh),
        "own_ms": median(own),
        "floor_ms": median(floor),
        "kind": kept.caps.kind,
        "model": kept.model,
    }


def report(r: dict, where: str) -> None:
    print(f"{r['kind']} server ({where}), {r['model']}, {r['tokens']} tokens, median of the runs\n")
    print(
        f"one call per token   {r['loop_tps']:6.1f} tokens/s   the server computed {r['server_ms']:.1f} ms of each step"
    )
    print(f"one streaming call   {r['stream_tps']:6.1f} tokens/s   first token after {r['ttft_ms']:.1f} ms")
    print(f"streaming / one-call {r['stream_tps'] / r['loop_tps']:6.2f}x\n")
    print("client overhead per step (one call per token):")
    print(f"  HTTP round trip beyond the server's own time, kept-alive connection  {r['http_kept_ms']:5.2f} ms")
    print(f"  the same, a new connection for every call                              {r['http_fresh_ms']:5.2f} ms")
    print(f"  of which a bare request with no work behind it (HTTP alone) takes     {r['floor_ms']:5.2f} ms")
    print(f"  tokenloop's own work (parse, sort, candidates, pick)                   {r['own_ms']:5.2f} ms")
    client = r["floor_ms"] + r["own_ms"]
    print(
        f"  the client's share: HTTP alone + tokenloop's work = {client:.2f} ms ({'under' if client < 2 else 'OVER'} 2 ms); the rest of the"
    )
    print("  round trip is the server's own queueing and JSON, which its timings leave out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an already running server (default: start llama-server here)")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="llama-server threads when started here")
    args = parser.parse_args()
    if args.url:
        report(measure(args.url, args.tokens, args.repeats), args.url)
        return
    with started_llama_server(args.threads) as (url, how):
        report(measure(url, args.tokens, args.repeats), f"started here: {how}")


if __name__ == "__main__":
    main()
