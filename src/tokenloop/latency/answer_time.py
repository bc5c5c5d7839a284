"""How long a 500-token answer takes on the connected model, measured, not assumed.

An answer of n tokens is one prefill (the first token, TTFT) and n - 1 decode steps (ITL each):
`latency.total_ms`. Two ways to get TTFT and ITL:
- embedded: `loop.generate` with its cache: step 1 is the prompt's prefill, each later step one token;
- a server: one streamed completion (`latency.stream_once`), client-side arrival times.
The projection to 500 tokens is `latency.budget`, which also says what share the prefill is.
"""

from __future__ import annotations

import statistics
import time
from functools import partial

from ..loop import generate
from ..records import Step
from . import budget as latency

ANSWER_TOKENS = 500


def embedded(backend, prompt: str, steps: int = 16) -> dict:
    """The project's one loop, greedy and with its cache: step 1 is the prefill (TTFT), each later
    step one new token (ITL = their median). End tokens don't stop it: the steps are what is timed."""
    ids = backend.encode(prompt)
    run = partial(generate, backend, ids, max_new=steps + 1, show=1, stop_ids=frozenset())
    list(run(max_new=2))  # warm-up, not counted (first calls pick kernels)
    times = [record.ms for record in run() if isinstance(record, Step)]
    return result(times[0], statistics.median(times[1:]), len(ids), len(times), "the cached loop, in this process")


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
