"""Each request's time to first token by the server's own account, joined to the client's clock,
and how warm the prefix cache was while it ran. The one piece `latency --url` and Lesson 3's "where
did your TTFT go?" step share.

For one request:

    client TTFT = queue + server TTFT + the rest

- queue: the engine had the request but had not scheduled it (vLLM `metrics.queue_time_ms`);
- server TTFT: scheduled to first token, the prefill (vLLM `metrics.time_to_first_token_ms`,
  counted from scheduling, not arrival; llama.cpp `timings.prompt_ms`, with no queue reported);
- the rest: what neither explains: HTTP both ways, the API server, tokenizing the prompt,
  detokenizing the first token, the chunk's trip to the client.

The two clocks are different machines' in general, so only intervals are compared: each is
measured on one clock, and the server's intervals lie inside the client's, so the rest is never
negative unless a clock is wrong. vLLM sends these numbers with `--enable-per-request-metrics`, on
the last (usage) chunk of a stream; without them `server_time.Tally` still splits the mean from
`/metrics`, server-wide and guarded.

Warmth: a request either asked for a cold cache (a fresh `cache_salt`, which vLLM mixes into the
hash of every block, so nothing cached before can match) or it did not, and then the server may
have served part of its prompt from the prefix cache: `usage.prompt_tokens_details.cached_tokens`
per request (vLLM with `--enable-prompt-tokens-details`; llama.cpp `timings.cache_n`), and the
prefix-cache counters' delta over the run. A run served mostly from the cache measured the cache,
not the prefill: `warmth` says so first.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..measure.bench_stats import percentile
from ..measure.streamed import Stream

PARTS = {
    "queue_ms": "queue: at the server, waiting to be scheduled",
    "server_ttft_ms": "server TTFT: scheduled to first token (the prefill)",
    "rest_ms": "the rest: HTTP, the API server, tokenizing, the first chunk's trip",
}
MOSTLY = 0.5  # the share of prompt tokens cached above which a run measured the cache


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parts(stream: Stream) -> dict | None:
    """One request's waterfall (ms), from the server's own numbers; None when it sent none."""
    metrics, timings = stream.metrics or {}, stream.server or {}
    server = _number(metrics.get("time_to_first_token_ms"))
    if server is not None:
        source, queue = "vLLM per-request metrics", _number(metrics.get("queue_time_ms"))
        server_itl = _number(metrics.get("mean_itl_ms"))
    elif _number(timings.get("prompt_ms")) is not None:
        source, queue, server = "llama.cpp timings", None, _number(timings["prompt_ms"])
        server_itl = _number(timings.get("predicted_per_token_ms"))
    else:
        return None
    client = stream.ttft_ms
    return {
        "source": source,
        "client_ttft_ms": client,
        "queue_ms": queue,
        "server_ttft_ms": server,
        "rest_ms": client - (queue or 0.0) - server,
        "client_itl_ms": stream.itl_ms,
        "server_itl_ms": server_itl,
        "cached_tokens": stream.cached_tokens,
    }


def account(streams: Sequence[Stream]) -> dict | None:
    """Every request's parts, and the percentiles of each part (ms); None when no request carried
    the server's own numbers."""
    rows = [p for p in (parts(s) for s in streams) if p]
    if not rows:
        return None
    stats = {}
    for key in ("client_ttft_ms", *PARTS, "client_itl_ms", "server_itl_ms"):
        values = [r[key] for r in rows if r[key] is not None]
        stats[key] = (
            {
                "mean": sum(values) / len(values),
                "median": percentile(values, 50),
                "p90": percentile(values, 90),
                "p99": percentile(values, 99),
            }
            if values
            else None
        )
    return {
        "source": rows[0]["source"],
        "requests": len(rows),
        "of": len(streams),
        "parts": PARTS,
        "stats": stats,
        "per_request": rows,
        "rest_negative": sum(1 for r in rows if r["rest_ms"] < 0),
    }


def warmth(streams: Sequence[Stream], counters: dict | None = None) -> dict:
    """How cold the run was: requests sent cold, prompt tokens the server said were cached, and the
    prefix-cache counters' delta (`counters`: a `server_time.Tally.report`, or None)."""
    cold = sum(1 for s in streams if s.cold)
    reported = [s for s in streams if s.cached_tokens is not None and s.prompt_tokens]
    cached = sum(s.cached_tokens for s in reported)
    prompt = sum(s.prompt_tokens for s in reported)
    share = cached / prompt if prompt else None
    queries = (counters or {}).get("prefix_cache_queries") or 0
    hits = (counters or {}).get("prefix_cache_hits") or 0
    counter_share = hits / queries if queries else None
    measured = share if share is not None else counter_share
    if measured is not None and measured >= MOSTLY:
        headline = f"you measured the prefix cache: {measured:.0%} of prompt tokens were cached"
    elif cold == len(streams) and streams:
        said = f", {cached:,} of {prompt:,} prompt tokens cached" if reported else ""
        headline = f"cold: every request carried a fresh cache salt{said}"
    elif measured is not None:
        headline = f"warm allowed: {measured:.0%} of prompt tokens were cached"
    else:
        headline = "warm allowed, and the server did not say how much of the prompts it found cached"
    return {
        "mode": "cold" if streams and cold == len(streams) else "warm",
        "requests": len(streams),
        "cold_requests": cold,
        "reported": len(reported),
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "cached_share": share,
        "counter_queries": int(queries),
        "counter_hits": int(hits),
        "counter_share": counter_share,
        "headline": headline,
    }
