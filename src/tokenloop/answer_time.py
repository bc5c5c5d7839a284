"""How long a 500-token answer takes on the connected model, measured, not assumed.

An answer of n tokens is one prefill (the first token, TTFT) and n - 1 decode steps (ITL each):
`latency.total_ms`. Two ways to get TTFT and ITL:
- embedded: the cached loop itself: the prompt's prefill timed, then each one-token step;
- a server: one streamed completion (`latency.stream_once`), client-side arrival times.
The projection to 500 tokens is `latency.budget`, which also says what share the prefill is.
"""

from __future__ import annotations

import statistics
import time

from . import latency

ANSWER_TOKENS = 500


def embedded(backend, prompt: str, steps: int = 16) -> dict:
    """TTFT = the cached loop's prefill; ITL = the median of `steps` one-token decode steps."""
    ids = backend.encode(prompt)
    backend.forward(ids, backend.new_cache())  # warm-up, not counted (first calls pick kernels)
    cache = backend.new_cache()
    start = time.perf_counter()
    scores = backend.forward(ids, cache)  # prefill: the whole prompt, one pass
    ttft = (time.perf_counter() - start) * 1000
    gaps = []
    for _ in range(steps):
        ids = ids + [scores.token_id(0)]  # greedy: append the favourite
        start = time.perf_counter()
        scores = backend.forward(ids, cache)  # one new token against the cache
        gaps.append((time.perf_counter() - start) * 1000)
    return result(ttft, statistics.median(gaps), len(ids) - steps, steps + 1, "the cached loop, in this process")


def server(client, model: str, prompt: str, steps: int = 16) -> dict:
    """One streamed request after a warm-up; a fresh number first, so no cached prefix helps."""
    latency.stream_once(client, model, f"0. {prompt}", 2)  # warm-up, not counted
    run = latency.stream_once(client, model, f"{time.time_ns() % 10**9}. {prompt}", steps + 1)
    itl = run.itl_ms if run.itl_ms is not None else run.ttft_ms
    return result(run.ttft_ms, itl, None, len(run.arrivals_ms), "one streamed completion, timed by the client")


def result(ttft_ms: float, itl_ms: float, prompt_tokens: int | None, measured_tokens: int, how: str) -> dict:
    projected = latency.budget(ttft_ms, itl_ms, ANSWER_TOKENS)
    return {
        "ttft_ms": ttft_ms,
        "itl_ms": itl_ms,
        "prompt_tokens": prompt_tokens,
        "measured_tokens": measured_tokens,
        "tokens": ANSWER_TOKENS,
        "total_ms": projected["total_ms"],
        "total_s": projected["total_ms"] / 1000,
        "prefill_share": projected["ttft_share"],
        "how": how,
    }
