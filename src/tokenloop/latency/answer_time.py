"""How long a 500-token answer takes on the connected model, measured, not assumed.

An answer of n tokens is one prefill (the first token, TTFT) and n - 1 decode steps (ITL each):
`latency.total_ms`. Two ways to get TTFT and ITL:
- embedded: `loop.generate` with its cache: step 1 is the prompt's prefill, each later step one token;
- a server: one streamed completion (`latency.stream_once`), client-side arrival times.
The projection to 500 tokens is `latency.budget`, which also says what share the prefill is. It is
a projection, not a measurement of 500 tokens, and says so (`projected_from`: the decode steps
timed); `low_s`/`high_s` project the steps' lower and upper quartile, the spread of the noise.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

from ..loop import generate
from ..records import Step
from . import budget as latency

ANSWER_TOKENS = 500


Progress = Callable[[int, int], None]  # (steps done, steps in all); may raise to stop the run


def embedded(backend, prompt: str, steps: int = 16, on_progress: Progress | None = None) -> dict:
    """The project's one loop, greedy and with its cache: step 1 is the prefill (TTFT), each later
    step one new token (ITL = their median). End tokens don't stop it: the steps are what is timed."""
    ids = backend.encode(prompt)
    run = partial(generate, backend, ids, max_new=steps + 1, show=1, stop_ids=frozenset())
    list(run(max_new=2))  # warm-up, not counted (first calls pick kernels)
    times = []
    for record in run():
        if isinstance(record, Step):
            times.append(record.ms)
            if on_progress:
                on_progress(len(times), steps + 1)
    return result(times[0], times[1:], len(ids), "the cached loop, in this process")


def server(client, model: str, prompt: str, steps: int = 16, on_progress: Progress | None = None) -> dict:
    """One streamed request after a warm-up; a fresh number first, so no cached prefix helps."""
    latency.stream_once(client, model, f"0. {prompt}", 2)  # warm-up, not counted
    if on_progress:
        on_progress(1, 2)
    run = latency.stream_once(client, model, f"{time.time_ns() % 10**9}. {prompt}", steps + 1)
    if on_progress:
        on_progress(2, 2)
    arrivals = run.arrivals_ms
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])] or [run.ttft_ms]
    return result(run.ttft_ms, gaps, None, "one streamed completion, timed by the client")


def result(ttft_ms: float, steps_ms: list[float], prompt_tokens: int | None, how: str) -> dict:
    """TTFT and the decode steps' median, projected to `ANSWER_TOKENS`; the quartiles give the range."""
    itl_ms = statistics.median(steps_ms)
    low, high = statistics.quantiles(steps_ms, n=4, method="inclusive")[::2] if len(steps_ms) > 1 else (itl_ms, itl_ms)
    projected = latency.budget(ttft_ms, itl_ms, ANSWER_TOKENS)
    at = lambda ms: latency.budget(ttft_ms, ms, ANSWER_TOKENS)["total_ms"] / 1000  # noqa: E731
    return {
        "ttft_ms": ttft_ms,
        "itl_ms": itl_ms,
        "itl_low_ms": low,
        "itl_high_ms": high,
        "steps_ms": steps_ms,
        "prompt_tokens": prompt_tokens,
        "measured_tokens": len(steps_ms) + 1,
        "projected_from": len(steps_ms),  # decode steps timed: the 500-token total is projected from them
        "low_s": at(low),
        "high_s": at(high),
        "tokens": ANSWER_TOKENS,
        "total_ms": projected["total_ms"],
        "total_s": projected["total_ms"] / 1000,
        "prefill_share": projected["ttft_share"],
        "how": how,
    }
