"""The staircase: what one step of the loop costs as the sequence grows, with and without a KV cache.

For a sequence of n tokens, one step of the loop is:
- no cache: one forward over all n tokens (the work grows with n: a rising staircase);
- KV cache: one forward over the newest token, the other n - 1 already cached (prefill untimed).
Both give the same next-token scores; only the work differs.

A shared machine is noisy, so one long run proves nothing. Lengths are measured in an interleaved,
shuffled order, every length several times; each length keeps its minimum (the least disturbed
run) and its spread (max - min), and the fits are made on the minima and report their R². The
page draws the medians with the range as whiskers, and `effect` says, per kind, whether the
longest length is slower than the shortest beyond that spread (`measure.noise`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..measure import noise
from ..measure.filler import token_ids
from ..measure.fits import Fit, fit_cached, fit_uncached
from ..model import estimates

KINDS = ("uncached", "cached")


# --- plan (pure) -------------------------------------------------------------------------------
def lengths(max_len: int, points: int) -> list[int]:
    """`points` evenly spaced sequence lengths ending at max_len (first one max_len / points)."""
    return sorted({round(max_len * (i + 1) / points) for i in range(points)})


def schedule(lengths: Sequence[int], repeats: int, seed: int = 0) -> list[tuple[int, str]]:
    """The measuring order: every round visits every length once, in a new shuffled order, and
    alternates which of the two kinds goes first, so slow spells spread over all lengths."""
    rng = random.Random(seed)
    order: list[tuple[int, str]] = []
    for round_ in range(repeats):
        shuffled = list(lengths)
        rng.shuffle(shuffled)
        kinds = KINDS if round_ % 2 == 0 else KINDS[::-1]
        order += [(n, kind) for n in shuffled for kind in kinds]
    return order


MAX_WORK = 100_000  # measurements in one run: far past any useful repeat count


def check_work(points: int, repeats: int, per_point: int) -> None:
    """--points × --repeats within MAX_WORK, by arithmetic, before any schedule is built."""
    if points * repeats * per_point > MAX_WORK:
        raise UsageError(
            f"--points {points} × --repeats {repeats} is {points * repeats * per_point:,} measurements: "
            f"at most {MAX_WORK:,} in one run; lower --repeats or --points"
        )


def check(max_len: int, points: int, repeats: int, context_length: int) -> None:
    if points < 2:
        raise UsageError(f"--points must be at least 2 to draw a line, not {points}")
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, not {repeats}")
    check_work(points, repeats, len(KINDS))
    if max_len > context_length:
        raise UsageError(
            f"--max-len {max_len} is over the model's context of {context_length} tokens: use at most {context_length}"
        )
    if max_len < points:
        raise UsageError(f"--max-len {max_len} is shorter than --points {points}: give at least one token per point")


# --- measuring ---------------------------------------------------------------------------------
@dataclass
class Sample:
    length: int
    kind: str  # "uncached" or "cached"
    ms: float
    tokens_in: int  # tokens this forward ran through the model (exact, unlike the time)


def samples(backend, ids: Sequence[int], order: Sequence[tuple[int, str]]) -> Iterator[Sample]:
    """Time one loop step per entry of `order`. Warm-up and cache prefills are not timed."""
    backend.forward(ids[:8], None)  # warm-up: first calls allocate and pick kernels
    warm = backend.new_cache()
    backend.forward(ids[:8], warm)
    backend.forward(ids[:9], warm)
    caches: dict[int, Any] = {}
    for n, kind in order:
        cache = None
        if kind == "cached":
            if n not in caches:  # prefill n - 1 tokens once, untimed
                caches[n] = backend.new_cache()
                if n > 1:
                    backend.forward(ids[: n - 1], caches[n])
            cache = caches[n]  # a repeat crops the last token and runs it again
        start = time.perf_counter()
        scores = backend.forward(ids[:n], cache)
        ms = (time.perf_counter() - start) * 1000
        yield Sample(n, kind, ms, scores.tokens_in)


@dataclass
class Point:
    length: int
    uncached: list[float] = field(default_factory=list)  # ms of every repeat
    cached: list[float] = field(default_factory=list)
    uncached_tokens_in: int = 0
    cached_tokens_in: int = 0

    def to_json(self) -> dict:
        return {
            "length": self.length,
            "uncached_ms": min(self.uncached),
            "uncached_spread_ms": max(self.uncached) - min(self.uncached),
            "uncached_median_ms": noise.spread(self.uncached)["median"],
            "cached_median_ms": noise.spread(self.cached)["median"],
            "cached_ms": min(self.cached),
            "cached_spread_ms": max(self.cached) - min(self.cached),
            "uncached_tokens_in": self.uncached_tokens_in,
            "cached_tokens_in": self.cached_tokens_in,
            "uncached_samples_ms": self.uncached,
            "cached_samples_ms": self.cached,
        }


@dataclass
class StaircaseResult:
    model: str
    max_len: int
    repeats: int
    series: list[Point]
    fits: dict[str, Fit]
    estimate: dict
    wall_s: float
    threads: int = 1  # torch CPU threads used
    path: str = "transformers float32"  # how the model ran: engine and weights

    @property
    def points(self) -> int:
        return len(self.series)

    def predicted(self) -> dict:
        """From the fits: a whole max_len-token generation, and the FLOP rate the steps reached."""
        ns = range(1, self.max_len + 1)
        uncached_s = sum(max(self.fits["uncached"].at(n), 0.0) for n in ns) / 1000
        cached_s = sum(max(self.fits["cached"].at(n), 0.0) for n in ns) / 1000
        last = self.series[-1]
        return {
            "generation_s_uncached": uncached_s,
            "generation_s_cached": cached_s,
            "speedup": uncached_s / cached_s if cached_s else None,
            "gflops_uncached_at_max": self.estimate["flops_per_step_uncached_at_max"] / min(last.uncached) / 1e6,
            "gflops_cached_at_max": self.estimate["flops_per_step_cached"] / min(last.cached) / 1e6,
        }

    def noise(self) -> dict:
        """The largest spread of the repeats, as a share of that length's minimum."""
        return {
            f"{kind}_max_spread_pct": max(
                100 * (max(getattr(p, kind)) - min(getattr(p, kind))) / min(getattr(p, kind)) for p in self.series
            )
            for kind in KINDS
        }

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "max_len": self.max_len,
            "points": self.points,
            "repeats": self.repeats,
            "series": [p.to_json() for p in self.series],
            "fits": {kind: fit.to_json() for kind, fit in self.fits.items()},
            "estimate": self.estimate,
            "predicted": self.predicted(),
            "noise": self.noise(),
            "effect": {
                kind: noise.effect(getattr(self.series[0], kind), getattr(self.series[-1], kind)) for kind in KINDS
            },
            "wall_s": self.wall_s,
            "threads": self.threads,
            "path": self.path,
        }


def collect(lengths_: Sequence[int], stream: Iterator[Sample]) -> list[Point]:
    """Group the samples by length; the exact work per step must not vary between repeats."""
    points = {n: Point(n) for n in lengths_}
    for s in stream:
        p = points[s.length]
        getattr(p, s.kind).append(s.ms)
        previous = getattr(p, f"{s.kind}_tokens_in")
        assert previous in (0, s.tokens_in), "a repeat ran a different number of tokens"
        setattr(p, f"{s.kind}_tokens_in", s.tokens_in)
    return [points[n] for n in sorted(points)]


def measure(
    backend,
    max_len: int = 256,
    points: int = 6,
    repeats: int = 3,
    on_progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> StaircaseResult:
    """Measure the staircase on an embedded backend (one with `forward(ids, cache)` and `tokens_in`).

    `threads` sets torch's CPU threads for the run (None: leave torch's choice, one per core). On a
    machine shared with other busy processes, 1 thread is far steadier: threads that wait for
    each other at every matrix multiply lose whole time slices when a core is taken."""
    import torch

    check(max_len, points, repeats, backend.context_length)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, not {threads}")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _measure(backend, max_len, points, repeats, on_progress, seed)
    finally:
        torch.set_num_threads(before)


def _measure(backend, max_len, points, repeats, on_progress, seed) -> StaircaseResult:
    import torch

    plan = lengths(max_len, points)
    order = schedule(plan, repeats, seed)
    ids = token_ids(backend, max(max_len, 16))  # warm-up needs a few tokens
    start = time.perf_counter()

    def progress(stream: Iterator[Sample]) -> Iterator[Sample]:
        for done, sample in enumerate(stream, 1):
            yield sample
            if on_progress:
                on_progress(done, len(order))

    series = collect(plan, progress(samples(backend, ids, order)))
    xs = [p.length for p in series]
    fits = {
        "uncached": fit_uncached(xs, [min(p.uncached) for p in series]),
        "cached": fit_cached(xs, [min(p.cached) for p in series]),
    }
    shape = estimates.Shape.from_config(backend.config)
    estimate = estimates.estimate(shape, max_len, backend.kv_dtype)  # KV-cache bytes in what the cache holds
    return StaircaseResult(
        backend.model,
        max_len,
        repeats,
        series,
        fits,
        estimate,
        time.perf_counter() - start,
        torch.get_num_threads(),
        backend.engine,
    )
