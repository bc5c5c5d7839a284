"""This machine's memory bandwidth, and the decode speed it allows each way of running the model.

Decoding one token reads every weight once. If nothing else cost time, a step would take
bytes of weights / memory bandwidth, so tokens/s <= bandwidth / bytes per token: the bound.
The bandwidth is measured like STREAM's copy: a large array (far bigger than the caches)
copied into another, bytes read + bytes written over the best time. A read-only pass (a dot
product of the array with itself) is shown beside it, since a decode step mostly reads.

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


def stream_gbs(size: int = SIZE) -> float:
    """GB/s of a large-array copy, counting bytes read plus bytes written (STREAM's convention)."""
    a, b = torch.ones(size), torch.empty(size)
    return 2 * a.nbytes / best_seconds(lambda: b.copy_(a)) / 1e9


def read_gbs(size: int = SIZE) -> float:
    """GB/s of reading a large array once (a dot product with itself)."""
    a = torch.ones(size)
    return a.nbytes / best_seconds(lambda: torch.dot(a, a)) / 1e9


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
    print(f"{'path':22} {'MB/token':>8} {'bound tok/s':>11} {'tok/s':>7} {'share':>6} {'GB/s reached':>12}")
    for path in [p.strip() for p in args.paths.split(",") if p.strip()]:
        backend = open_path(path)
        backend.eos_ids = frozenset()
        ids = prompt_ids(backend, PROMPT)
        greedy(backend, ids, 4)  # warm-up
        seconds, _ = greedy(backend, ids, args.tokens)
        mb, tps = weight_bytes(backend) / 1e6, args.tokens / seconds
        bound = copy * 1e3 / mb
        print(f"{path:22} {mb:8.0f} {bound:11.0f} {tps:7.1f} {100 * tps / bound:5.0f}% {tps * mb / 1e3:12.1f}")
        del backend


if __name__ == "__main__":
    main()
