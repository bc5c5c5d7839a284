"""With a KV cache, is a token deep in a long conversation as cheap as an early one?

Each step runs one new token, but its attention still reads every cached key and value, so the
step grows a little with the context: nearly flat, not flat. Measured
- on the embedded model with `staircase.samples` (the same timed forward as the staircase: the
  cache prefilled untimed, then one cached step timed);
- on a server with `server_staircase.measurements`: the median gap between streamed tokens after a
  fresh n-token prompt, i.e. one cached step at context n;
repeated in a shuffled order. Each length keeps its median and range; whether the longest context
is slower than the shortest beyond that noise is `measure.noise.effect`'s verdict.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..measure import noise
from ..measure.filler import token_ids
from .server_staircase import measurements
from .staircase import samples

FRACTIONS = (1 / 32, 1 / 8, 1 / 4, 1 / 2, 1)


def lengths(longest: int) -> list[int]:
    """A short context and a few up to `longest` tokens."""
    return sorted({max(8, round(longest * f)) for f in FRACTIONS})


Progress = Callable[[int, int], None]  # (steps done, steps in all); may raise to stop the run


def measure(backend, longest: int = 1024, repeats: int = 3, seed: int = 0, on_progress: Progress | None = None) -> dict:
    longest = min(longest, backend.context_length - 1)
    plan = lengths(longest)
    rng = random.Random(seed)
    order = [(n, "cached") for _ in range(repeats) for n in rng.sample(plan, len(plan))]
    times: dict[int, list[float]] = {n: [] for n in plan}
    for done, sample in enumerate(samples(backend, token_ids(backend, max(plan)), order), 1):
        times[sample.length].append(sample.ms)
        if on_progress:
            on_progress(done, len(order))
    return result(plan, times, repeats)


def server(
    backend, longest: int = 1024, repeats: int = 2, gaps: int = 8, seed: int = 0, on_progress: Progress | None = None
) -> dict:
    """The same on a server (an open `ServerBackend`): time per streamed token at each context."""
    plan = lengths(min(longest, backend.context_length - gaps - 1))
    times: dict[int, list[float]] = {n: [] for n in plan}
    for done, point in enumerate(measurements(backend, plan, repeats, gaps, seed), 1):
        if on_progress:
            on_progress(done, len(plan) * repeats)
        if point.itl_ms is not None:
            times[point.n].append(point.itl_ms)
    return result([n for n in plan if times[n]], times, repeats)


def result(plan: list[int], times: dict[int, list[float]], repeats: int) -> dict:
    """Per length the median, its range and every run; `effect`: the longest context against the
    shortest, beyond the spread of the repeats or not (`noise.effect`)."""
    points = []
    for n in plan:
        s = noise.spread(times[n])
        points.append(
            {
                "context": n,
                "ms": s["median"],
                "low_ms": s["low"],
                "high_ms": s["high"],
                "spread_ms": s["high"] - s["low"],
                "samples_ms": times[n],
            }
        )
    first, last = points[0], points[-1]
    return {
        "points": points,
        "repeats": repeats,
        "ratio": last["ms"] / first["ms"],  # the longest context's median step against the shortest's
        "shortest": first["context"],
        "longest": last["context"],
        "effect": noise.effect(times[first["context"]], times[last["context"]]),
    }
