"""Lesson 3, step 5: at prefill, attention compares every prompt token with every earlier one.
How much memory does that take for one layer?

Two ways to compute the same attention of one layer (the model's own heads and head size, random
queries, keys and values, causal mask):
- **naive**: the score matrix materialised, (H, T, T) numbers, then its softmax (another one);
- **fused**: PyTorch's `scaled_dot_product_attention`, which works through the scores in tiles
  (FlashAttention's idea) and never holds the whole matrix.
Each is timed and its peak memory measured: the process's resident-set high-water mark
(`VmHWM`), reset just before (`/proc/self/clear_refs` 5), minus what was resident then. Large
tensors come straight from the kernel and go back when freed (glibc is told so first: a fixed
128 KiB mmap threshold, and the free heap trimmed, or memory an earlier tensor left resident would
hide the new one), so the difference is what the call held at its peak. Linux only; elsewhere the peak is sampled every millisecond from a thread.
Other work in this process at the same moment would count too: the reveal says it is a process-wide
number.

Bounded: the naive matrix grows with T², so only lengths whose naive peak (two (H, T, T) float32
tensors) stays under `BUDGET` are run; a longer one (8,192 tokens, the lesson's question) is
projected from the measured growth and labelled projected.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

BUDGET = 1_500_000_000  # bytes the naive run may hold at its peak (two score matrices)
STATUS = Path("/proc/self/status")
CLEAR = Path("/proc/self/clear_refs")


def naive(q, k, v):
    """Attention written out: the (H, T, T) scores held whole, masked, softmaxed, applied."""
    import torch

    T, d = q.shape[1], q.shape[2]
    scores = (q @ k.transpose(1, 2)) / math.sqrt(d)  # (H, T, T): every token against every token
    future = torch.ones(T, T, dtype=torch.bool).triu(1)  # (T, T): True where a token would look ahead
    scores.masked_fill_(future, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (H, T, T) again: the second copy
    del scores
    return weights @ v  # (H, T, d)


def fused(q, k, v):
    """The same attention, tiled: the scores never exist as one matrix. (On a CPU, PyTorch picks
    its tiled kernel for a batch of 4-D inputs; given 3-D ones it falls back to the plain math.)"""
    import torch

    sdpa = torch.nn.functional.scaled_dot_product_attention
    return sdpa(q[None], k[None], v[None], is_causal=True)[0]


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _large_from_the_kernel() -> None:
    """Make every allocation of 128 KiB or more its own mmap (glibc otherwise raises the threshold
    after large frees and serves later tensors from heap already resident), and hand the free heap
    back, so a tensor shows in the resident set when made. Nothing happens without glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _kb(field: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class Peak:
    """The most memory this process held while the block ran, above what it held at the start."""

    def __enter__(self):
        _large_from_the_kernel()
        self.how = "VmHWM"
        try:
            CLEAR.write_text("5")  # reset the high-water mark to what is resident now
        except OSError:
            self.how = "sampled"
        self.base = _kb("VmRSS") or 0
        self.top, self._stop = self.base, threading.Event()
        if self.how == "sampled":
            import psutil

            proc = psutil.Process()

            def watch():
                while not self._stop.is_set():
                    self.top = max(self.top, proc.memory_info().rss)
                    time.sleep(0.001)

            self._thread = threading.Thread(target=watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.how == "sampled":
            self._stop.set()
            self._thread.join()
        else:
            self.top = _kb("VmHWM") or self.base
        self.bytes = max(0, self.top - self.base)
        return False


def fits(heads: int, T: int, budget: int = BUDGET) -> bool:
    return 2 * heads * T * T * 4 <= budget


def measure(
    heads: int,
    head_dim: int,
    lengths=(1024, 2048, 4096),
    target: int = 8192,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    import torch

    run = [T for T in lengths if fits(heads, T)]
    if not run:
        raise ValueError("no length fits the memory budget")
    gen = torch.Generator().manual_seed(seed)
    points = []
    for i, T in enumerate(run, 1):
        q, k, v = (torch.randn(heads, T, head_dim, generator=gen) for _ in range(3))
        fused(q[:, :8], k[:, :8], v[:, :8])  # warm-up: pick the kernel, untimed
        with Peak() as pn:
            start = time.perf_counter()
            out_n = naive(q, k, v)
            naive_ms = (time.perf_counter() - start) * 1000
        with Peak() as pf:
            start = time.perf_counter()
            out_f = fused(q, k, v)
            fused_ms = (time.perf_counter() - start) * 1000
        points.append(
            {
                "tokens": T,
                "score_bytes": heads * T * T * 4,  # what one (H, T, T) float32 matrix holds: arithmetic
                "naive_peak_bytes": pn.bytes,
                "fused_peak_bytes": pf.bytes,
                "naive_ms": naive_ms,
                "fused_ms": fused_ms,
                "max_abs_diff": float((out_n - out_f).abs().max()),
                "how": pn.how,
            }
        )
        del out_n, out_f, q, k, v
        if on_progress:
            on_progress(i, len(run))
    return {
        "heads": heads,
        "head_dim": head_dim,
        "dtype": "float32",
        "points": points,
        "skipped": [T for T in lengths if T not in run],
        "target": target,
        "projected": project(points, target),
        "budget_bytes": BUDGET,
    }


def project(points: list[dict], target: int) -> dict:
    """The naive peak and both times at `target` tokens, from the growth between the two longest
    lengths measured (bytes ∝ T^e, e measured; about 2 for the scores)."""
    if points[-1]["tokens"] >= target:
        last = next(p for p in points if p["tokens"] == target)
        return {"measured": True, "naive_peak_bytes": last["naive_peak_bytes"], "from": [target]}
    a, b = (points[-2], points[-1]) if len(points) > 1 else (None, points[-1])
    scale = target / b["tokens"]

    def grow(key: str, default: float) -> tuple[float, float]:
        if a is None or a[key] <= 0 or b[key] <= 0:
            return b[key] * scale**default, default
        e = math.log(b[key] / a[key]) / math.log(b["tokens"] / a["tokens"])
        return b[key] * scale**e, e

    peak, exponent = grow("naive_peak_bytes", 2.0)
    naive_ms, _ = grow("naive_ms", 2.0)
    fused_ms, _ = grow("fused_ms", 2.0)
    return {
        "measured": False,
        "tokens": target,
        "naive_peak_bytes": peak,
        "exponent": exponent,
        "naive_ms": naive_ms,
        "fused_ms": fused_ms,
        "score_bytes": points[-1]["score_bytes"] * scale**2,
        "from": [p["tokens"] for p in points[-2:]],
    }
