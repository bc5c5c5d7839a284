"""Every way of running the embedded model, side by side in one run (issue: speed, the fast path).

For each path (transformers float32, the torch engine in float32/bfloat16/int8/int4, the fast
path, ONNX Runtime, in float32/int4, and llama.cpp when llama-cpp-python is installed): decode tokens/s with tokenloop's own KV-cache
loop (softmax + top-8 + token text every step), its ratio to the default and to llama.cpp,
the bytes of weights a token reads and the share of the memory-bandwidth bound it reaches, the
per-step instruments as a share of a step, the warm start (a fresh `tokenloop run` until its
first step is printed), and the quality guard against float32 (top-1 agreement and mean KL
over a fixed text set) plus how many greedy tokens match float32's.
Runs are interleaved across paths and repeated; the median counts. Warm-up is not counted.

    OMP_NUM_THREADS=1 .venv/bin/python bench/fast_path.py [--tokens 64] [--repeats 3] [--paths onnxruntime-int4,llama.cpp]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

from tokenloop import sampling
from tokenloop.backends import agreement, llamacpp
from tokenloop.backends.engines import open_embedded
from tokenloop.backends.llamacpp_build import cpu_flags
from tokenloop.loop import generate, prompt_ids
from tokenloop.records import Step
from tokenloop.scores import Distribution, candidates

PROMPT = "Kubernetes pods are scheduled by the"
PATHS = (
    "transformers-float32",
    "torch-float32",
    "torch-bfloat16",
    "torch-int8",
    "torch-int4",
    "onnxruntime-float32",
    "onnxruntime-int4",
    "llama.cpp",
)
DEFAULT, FAST = "transformers-float32", "onnxruntime-int4"


def available_paths() -> list[str]:
    return [p for p in PATHS if p != "llama.cpp" or llamacpp.available()]


def open_path(path: str):
    """The backend for a path name like 'torch-int8' (no agreement line: the benchmark measures it)."""
    engine, _, dtype = path.partition("-")
    return open_embedded(None, engine, dtype or None, guard=False)


def cli_options(path: str) -> list[str]:
    engine, _, dtype = path.partition("-")
    return ["--engine", engine] + (["--dtype", dtype] if dtype else [])


def first_step_s(argv: list[str]) -> float | None:
    start, first = time.perf_counter(), None
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if first is None and line.startswith("step 1"):
            first = time.perf_counter() - start
    proc.wait()
    return first


def warm_start_s(path: str) -> float | None:
    """Seconds from starting `tokenloop run` to its first step printed, in a fresh process."""
    argv = [sys.executable, "-m", "tokenloop.cli", "run", PROMPT, "--max-new", "1", *cli_options(path)]
    first_step_s(argv)  # a first run does the one-time work (quantizing, the agreement line): not counted
    return first_step_s(argv)


def weight_bytes(backend) -> int:
    """Bytes of weights one decode step reads (a tied embedding counts once, as the output head)."""
    if hasattr(backend, "weight_bytes"):
        return backend.weight_bytes
    return sum(p.numel() * p.element_size() for p in backend.lm.parameters() if p.dim() == 2)


def greedy(backend, ids: list[int], n: int) -> tuple[float, list[int]]:
    """(seconds, tokens) for n greedy tokens through tokenloop's KV-cache loop."""
    start = time.perf_counter()
    tokens = [r.chosen.id for r in generate(backend, ids, max_new=n) if isinstance(r, Step)]
    return time.perf_counter() - start, tokens


def instruments_ms(backend, ids: list[int], repeats: int = 200) -> float:
    """The per-step work of the loop outside the forward pass: softmax, pick, top-8 with token text."""
    scores = backend.forward(ids)
    start = time.perf_counter()
    for _ in range(repeats):
        raw = Distribution.raw(scores)
        index, _ = sampling.pick(scores.values, sampling.GREEDY)
        candidates(backend, scores, raw, 8), raw.candidate(backend, scores, index)
    return (time.perf_counter() - start) * 1000 / repeats


ISA = "sse4_2 avx avx2 fma f16c avx_vnni avx512f avx512bw avx512_vnni avx512_bf16 amx_tile".split()


def cpu_line() -> str:
    """Which CPU ran the table and the instruction sets the paths can use: the fast path's kernels
    (torch's own dispatch level) and llama.cpp's differ most between AVX2 and AVX-512 machines."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        info = ""
    name = next((line.partition(":")[2].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = cpu_flags(info) if info else set()
    have = " ".join(f for f in ISA if f in flags) or "unknown"
    return f"CPU: {name}, {os.cpu_count()} cores · instruction sets: {have} · torch dispatches {torch.backends.cpu.get_cpu_capability()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--paths", default=",".join(available_paths()), help="comma-separated, from: " + ", ".join(PATHS)
    )
    parser.add_argument("--no-quality", action="store_true", help="skip the agreement check (speed only)")
    args = parser.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        sys.exit(f"unknown path(s) {unknown}; choose from {', '.join(PATHS)}")

    from bandwidth import stream_gbs  # noqa: E402 (a sibling script)

    print(cpu_line())
    print(
        f"threads: torch {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
        f"llama.cpp the same · load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    starts = {path: warm_start_s(path) for path in paths}
    backends = {path: open_path(path) for path in paths}
    for backend in backends.values():
        backend.eos_ids = frozenset()  # the same number of tokens on every path
    ids = prompt_ids(backends[paths[0]], PROMPT)
    for backend in backends.values():
        greedy(backend, ids, 4)  # warm-up, not counted
    times: dict[str, list[float]] = {p: [] for p in paths}
    tokens: dict[str, list[int]] = {}
    for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits every path
        for path in paths:
            seconds, tokens[path] = greedy(backends[path], ids, args.tokens)
            times[path].append(seconds)
    bandwidth = stream_gbs()
    tps = {p: args.tokens / statistics.median(times[p]) for p in paths}
    reference = backends.get("torch-float32") or open_path("torch-float32")
    ref_tokens = tokens.get("torch-float32") or greedy(reference, ids, args.tokens)[1]

    print(
        f"memory bandwidth (large-array copy, read + write): {bandwidth:.1f} GB/s · {args.tokens} tokens, median of {args.repeats}\n"
    )
    print(
        f"{'path':22} {'start s':>7} {'tok/s':>7} {'x default':>9} {'x llama':>7} {'MB/tok':>7} {'bound':>6} {'share':>6} "
        f"{'instr':>6} {'top-1':>6} {'KL':>7} {'greedy=f32':>10}"
    )
    for path in paths:
        backend = backends[path]
        mb = weight_bytes(backend) / 1e6
        bound = bandwidth * 1e3 / mb
        step_ms = 1000 / tps[path]
        inst = instruments_ms(backend, ids)
        same = next((i for i, (a, b) in enumerate(zip(tokens[path], ref_tokens)) if a != b), len(ref_tokens))
        if args.no_quality:
            top1 = kl = "-"
        else:
            q = agreement.measure(reference, backend)
            top1, kl = f"{100 * q.top1:.1f}%", f"{q.kl:.4f}"
        ratio = f"{tps[path] / tps[DEFAULT]:.2f}" if DEFAULT in tps else "-"
        vs_llama = f"{tps[path] / tps['llama.cpp']:.2f}" if "llama.cpp" in tps else "-"
        start = f"{starts[path]:.2f}" if starts[path] else "-"
        print(
            f"{path:22} {start:>7} {tps[path]:7.1f} {ratio:>9} {vs_llama:>7} {mb:7.0f} {bound:6.0f} {100 * tps[path] / bound:5.0f}% "
            f"{100 * inst / step_ms:5.1f}% {top1:>6} {kl:>7} {same:>4}/{len(ref_tokens)}"
        )
    print(
        "\nstart s = a fresh `tokenloop run` until its first step is printed; bound = bandwidth / MB a token reads; share = tok/s / bound; instr = softmax + pick + top-8 + token text, "
        "as a share of a step; top-1 and KL against float32 over the fixed text set; greedy=f32: tokens equal "
        "to float32's before the first difference"
    )
    if FAST in tps and "llama.cpp" in tps:
        print(f"fast path ({FAST}) / llama.cpp: {tps[FAST] / tps['llama.cpp']:.2f} (target: >= 1.0)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
