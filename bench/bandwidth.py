"""This machine's memory bandwidth, the decode speed it allows each way of running the model,
and where a step's time goes instead.

Decoding one token reads every weight once. If nothing else cost time, a step would take
bytes of weights / memory bandwidth, so tokens/s <= bandwidth / bytes per token: the bound.
The bandwidth is measured like STREAM's copy: a large array (far bigger than the caches)
copied into another, bytes read + bytes written over the best time; a read-only pass (a dot
product of the array with itself) is printed beside it, since a decode step mostly reads.

Then, for each path, the step is split in two: its matrix multiplies alone (the same matrices
with the same kernels, back to back, nothing else) and the rest (norms, rotary positions,
attention, casts, Python). `kernels GB/s` is how fast the kernels alone read the weights: the
ceiling of that path on this machine, however little else a step did. llama.cpp's matmuls
can't be run apart from its graph, so only its whole step is shown.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bandwidth.py [--tokens 32] [--paths torch-int4,llama.cpp]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

SIZE = 64 * 2**20  # float32 elements per array: 256 MiB, far beyond any cache


def best_seconds(fn, repeats: int = 5) -> float:
    fn()  # touch the memory first
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def stream_gbs(size: int = SIZE, repeats: int = 10) -> float:
    """GB/s of a large-array copy, counting bytes read plus bytes written (STREAM's convention).
    The best of several runs: on a shared machine a slow run says more about the neighbours."""
    a, b = torch.ones(size), torch.empty(size)
    return 2 * a.nbytes / best_seconds(lambda: b.copy_(a), repeats) / 1e9


def read_gbs(size: int = SIZE) -> float:
    """GB/s of reading a large array once (a dot product with itself)."""
    a = torch.ones(size)
    return a.nbytes / best_seconds(lambda: torch.dot(a, a)) / 1e9


def matmuls(backend) -> list[tuple[object, torch.Tensor]] | None:
    """Every matrix multiply of one decode step as (callable, input of one token), in the order a
    step runs them; None where the engine doesn't expose them (llama.cpp)."""
    if hasattr(backend, "net"):  # the torch engine: four matrices a layer, then the head
        from tokenloop.backends.quantized import activation_dtype

        net, narrow = backend.net, activation_dtype(backend.net.dtype)
        mats = [m for layer in net.layers for m in (layer.qkv, layer.wo, layer.gate_up, layer.down)] + [net.head]
        s = net.config
        widths = [s.dim, s.heads * s.head_dim, s.dim, s.intermediate] * s.layers + [s.dim]
        return [(m, torch.randn(1, n).to(narrow)) for m, n in zip(mats, widths)]
    if hasattr(backend, "lm"):  # transformers: every nn.Linear, the output head included
        linears = [m for m in backend.lm.modules() if isinstance(m, torch.nn.Linear)]
        return [(m, torch.randn(1, m.in_features, dtype=m.weight.dtype)) for m in linears]
    return None


@torch.inference_mode()
def kernels_seconds(backend, repeats: int = 10) -> float | None:
    """Seconds for one step's matrix multiplies alone, back to back (the fastest of `repeats`)."""
    calls = matmuls(backend)
    if calls is None:
        return None
    return best_seconds(lambda: [m(x) for m, x in calls], repeats)


def main() -> None:
    from fast_path import PROMPT, available_paths, greedy, open_path, weight_bytes  # a sibling script

    from tokenloop.loop import prompt_ids

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--paths", default=",".join(available_paths()))
    args = parser.parse_args()
    print(f"threads {torch.get_num_threads()} · load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    copy, read = stream_gbs(), read_gbs()
    print(f"copy (read + write): {copy:5.1f} GB/s\nread only          : {read:5.1f} GB/s\n")
    rows = []
    for path in [p.strip() for p in args.paths.split(",") if p.strip()]:
        backend = open_path(path)
        backend.eos_ids = frozenset()
        ids = prompt_ids(backend, PROMPT)
        greedy(backend, ids, 4)  # warm-up
        seconds, _ = greedy(backend, ids, args.tokens)
        rows.append((path, weight_bytes(backend) / 1e6, args.tokens / seconds, kernels_seconds(backend)))
        del backend
    copy = max(copy, stream_gbs())  # measured again after the paths: the better of the two is the machine's
    print(f"copy again after the paths, the better one counts: {copy:5.1f} GB/s\n")
    print(
        f"{'path':22} {'MB/token':>8} {'bound tok/s':>11} {'tok/s':>7} {'share':>6} {'GB/s reached':>12} "
        f"{'kernels GB/s':>12} {'kernels/bound':>13} {'matmuls/step':>12}"
    )
    for path, mb, tps, kernels in rows:
        bound = copy * 1e3 / mb
        if kernels is None:
            parts = f"{'-':>12} {'-':>13} {'-':>12}"
        else:
            gbs = mb / 1e3 / kernels
            parts = f"{gbs:12.1f} {100 * gbs / copy:12.0f}% {100 * kernels * tps:11.0f}%"
        print(f"{path:22} {mb:8.0f} {bound:11.0f} {tps:7.1f} {100 * tps / bound:5.0f}% {tps * mb / 1e3:12.1f} {parts}")
    print(
        "\nbound = copy bandwidth / MB a token reads; share = tok/s / bound; kernels GB/s = the step's matrix multiplies "
        "alone, back to back; kernels/bound = that over the copy bandwidth (the most a path with these kernels could "
        "reach); matmuls/step = their share of a whole step (the rest is norms, attention, casts, Python)"
    )


if __name__ == "__main__":
    main()
