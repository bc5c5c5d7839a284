"""With a KV cache, is a token deep in a long conversation as cheap as an early one?

Each step runs one new token, but its attention still reads every cached key and value, so the
step grows a little with the context: nearly flat, not flat. Measured on the embedded model with
`staircase.samples` (the same timed forward as the staircase: the cache prefilled untimed, then
one cached step timed), repeated in a shuffled order, each length keeping its fastest run.
"""

from __future__ import annotations

import random

from .staircase import samples, token_ids

FRACTIONS = (1 / 32, 1 / 8, 1 / 4, 1 / 2, 1)


def lengths(longest: int) -> list[int]:
    """A short context and a few up to `longest` tokens."""
    return sorted({max(8, round(longest * f)) for f in FRACTIONS})


def measure(backend, longest: int = 1024, repeats: int = 3, seed: int = 0) -> dict:
    longest = min(longest, backend.context_length - 1)
    plan = lengths(longest)
    rng = random.Random(seed)
    order = [(n, "cached") for _ in range(repeats) for n in rng.sample(plan, len(plan))]
    times: dict[int, list[float]] = {n: [] for n in plan}
    for sample in samples(backend, token_ids(backend, max(plan)), order):
        times[sample.length].append(sample.ms)
    points = [{"context": n, "ms": min(times[n]), "spread_ms": max(times[n]) - min(times[n])} for n in plan]
    first, last = points[0], points[-1]
    return {
        "points": points,
        "repeats": repeats,
        "ratio": last["ms"] / first["ms"],  # the longest context's step against the shortest's
        "shortest": first["context"],
        "longest": last["context"],
    }
