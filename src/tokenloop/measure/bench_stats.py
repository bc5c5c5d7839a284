"""Latency statistics in the serving ecosystem's own terms, from streamed requests' timestamps.

The names and definitions are vLLM's `vllm bench serve` ones, so `latency --json` pastes into the
same dashboards (`mean_ttft_ms`, `median_tpot_ms`, `p99_itl_ms`, `request_goodput`, ...):

    TTFT  time to first token: request sent -> first streamed token
    TPOT  time per output token, per request: (E2EL - TTFT) / (tokens - 1), requests of 2+ tokens
    ITL   inter-token latency: every gap between two streamed tokens, pooled over all requests
    E2EL  end-to-end latency: request sent -> its last token

Each gets mean, median, std (of the population, as numpy's default) and the 90th and 99th
percentiles (linear interpolation, as numpy's default). Pure functions: no HTTP here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import UsageError

METRICS = ("ttft", "tpot", "itl", "e2el")
PERCENTILES = (90, 99)
DEFINITIONS = {
    "ttft": "time to first token: from sending the request to the first streamed token",
    "tpot": "time per output token after the first, per request: (E2EL - TTFT) / (tokens - 1)",
    "itl": "inter-token latency: each gap between two streamed tokens, pooled over requests",
    "e2el": "end-to-end latency: from sending the request to its last token",
}
GOODPUT_METRICS = ("ttft", "tpot", "e2el")  # the SLOs vLLM's bench takes


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation between the two nearest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(name: str, values: Sequence[float]) -> dict[str, float | None]:
    """mean, median, std, p90 and p99 of one metric, under vLLM's key names (None with no values)."""
    values = list(values)
    if not values:
        return {f"{stat}_{name}_ms": None for stat in ("mean", "median", "std", *(f"p{p}" for p in PERCENTILES))}
    mean = sum(values) / len(values)
    out = {
        f"mean_{name}_ms": mean,
        f"median_{name}_ms": percentile(values, 50),
        f"std_{name}_ms": math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)),
    }
    out.update({f"p{p}_{name}_ms": percentile(values, p) for p in PERCENTILES})
    return out


def per_request(arrivals_ms: Sequence[float], tokens: int | None = None) -> dict[str, float | list[float] | None]:
    """One request's TTFT, TPOT, E2EL and ITL gaps from the times its token chunks arrived (ms after
    sending); `tokens` is the output's length where a chunk may hold several (default: one each)."""
    ttft, e2el = arrivals_ms[0], arrivals_ms[-1]
    gaps = [b - a for a, b in zip(arrivals_ms, arrivals_ms[1:])]
    tokens = len(arrivals_ms) if tokens is None else tokens
    tpot = (e2el - ttft) / (tokens - 1) if tokens > 1 else None
    return {"ttft": ttft, "tpot": tpot, "e2el": e2el, "itl": gaps}


def parse_goodput(text: str | None) -> dict[str, float]:
    """`--goodput ttft:500,tpot:50` -> {"ttft": 500.0, "tpot": 50.0} (service-level objectives in ms)."""
    if not text:
        return {}
    slos = {}
    for part in text.split(","):
        name, _, value = part.strip().partition(":")
        if name not in GOODPUT_METRICS:
            raise UsageError(
                f"--goodput {text}: {name!r} is not one of {', '.join(GOODPUT_METRICS)}; e.g. ttft:500,tpot:50"
            )
        try:
            slos[name] = float(value)
        except ValueError:
            raise UsageError(f"--goodput {text}: {name} needs milliseconds, e.g. {name}:500") from None
        if not slos[name] > 0 or math.isinf(slos[name]):
            raise UsageError(f"--goodput {text}: {name} must be a number of milliseconds above 0")
    return slos


def meets(request: dict, slos: dict[str, float]) -> bool:
    """A request counts toward goodput if it meets every objective (a TPOT it has no value for is met)."""
    return all(request[name] is None or request[name] <= limit for name, limit in slos.items())


def bench(
    arrivals: Sequence[Sequence[float]],
    duration_s: float,
    slos: dict[str, float] | None = None,
    tokens: Sequence[int] | None = None,
) -> dict:
    """vLLM-bench-style metrics of completed streamed requests, given each one's token chunk arrival
    times (and, where a chunk may hold several, each one's output tokens) and the wall time they
    took together."""
    counts = [len(a) for a in arrivals] if tokens is None else list(tokens)
    requests = [per_request(a, n) for a, n in zip(arrivals, counts) if a]
    out: dict = {
        "completed": len(requests),
        "duration_s": duration_s,
        "total_output_tokens": sum(counts),
    }
    out["request_throughput"] = len(requests) / duration_s if duration_s > 0 else None
    out["output_throughput"] = out["total_output_tokens"] / duration_s if duration_s > 0 else None
    for name in METRICS:
        values = [v for r in requests for v in (r[name] if name == "itl" else [r[name]]) if v is not None]
        out.update(summary(name, values))
    if slos:
        good = sum(meets(r, slos) for r in requests)
        out["goodput_slos_ms"] = dict(slos)
        out["request_goodput"] = good / duration_s if duration_s > 0 else None
        out["goodput_share"] = good / len(requests) if requests else None
    return out
