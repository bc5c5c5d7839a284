"""Batching, measured: the same streamed requests at 1, 2, 4, 8 ... at once (`--concurrency`, a
closed loop), or arriving at 1, 2, 4 ... a second whatever the server's pace (`--rate`, an open loop:
the way real users arrive, and the one that shows a queue growing).

A server that batches runs one forward pass for every request in the batch, so while it has room
the total output rate climbs with concurrency and each user's time per token grows only a little;
once the batch is full (vLLM's --max-num-seqs, or compute), requests queue and TTFT jumps. Each
level is one bounded `load.Plan`; the result per level is vLLM bench's metrics over its requests
(output throughput over the level's wall time; TTFT, TPOT, ITL percentiles per request) and, where
the server has `/metrics`, its own queue and prefill time and peak KV-cache use in that window.
"""

from __future__ import annotations

from collections.abc import Callable

from ..backends.server import Client
from ..backends.server.metrics import scrape
from ..errors import UsageError
from ..measure.load import MAX_CONCURRENCY, MAX_RATE, MAX_REQUESTS, Plan, Request, run
from ..measure.streamed import Stream, bench, span_s
from . import server_time

SAMPLE_S = 0.25  # how often the gauges are read while a level runs


def _parse_list(text: str, flag: str, convert, what: str, fits, bounds: str) -> list:
    """A comma-separated list of numbers, each converted and checked, sorted without repeats; a bad
    one is a one-line error naming the flag and an example."""
    values = []
    for part in text.split(","):
        try:
            value = convert(part.strip())
        except ValueError:
            raise UsageError(f"{flag} {text}: {part.strip()!r} is not {what}") from None
        if not fits(value):
            raise UsageError(f"{flag} {text}: {bounds}, not {value:g}")
        values.append(value)
    return sorted(set(values))


def parse_levels(text: str) -> list[int]:
    """`--concurrency 1,2,4,8` -> [1, 2, 4, 8]."""
    return _parse_list(
        text,
        "--concurrency",
        int,
        "a whole number; e.g. 1,2,4,8",
        lambda level: 1 <= level <= MAX_CONCURRENCY,
        f"each level must be 1 to {MAX_CONCURRENCY}",
    )


def parse_rates(text: str) -> list[float]:
    """`--rate 1,2,4` -> [1.0, 2.0, 4.0] requests a second."""
    return _parse_list(
        text,
        "--rate",
        float,
        "a number of requests a second; e.g. 1,2,4",
        lambda rate: 0 < rate <= MAX_RATE,
        f"each rate must be above 0 and at most {MAX_RATE:g}",
    )


RATE_SECONDS = 10  # a rate's requests: ten seconds of arrivals by default
RATE_IN_FLIGHT = 64  # at most this many requests in flight at any rate


def rate_plans(
    url: str,
    rates: list[float],
    requests: int | None,
    max_tokens: int,
    prompt: str,
    time_cap_s: float,
    consent: bool = False,
    chat: bool = False,
    cold: bool = True,
    arrivals: str = "poisson",
) -> list[Plan]:
    """One plan per rate: `requests` each (default ten seconds' worth, at least 4), every prompt new."""
    out = []
    for rate in rates:
        check_requests(requests)
        n = min(MAX_REQUESTS, requests or max(4, round(rate * RATE_SECONDS)))
        out.append(
            Plan(
                url,
                [Request(f"r{rate:g}.{i}. {prompt}", max_tokens, chat, cold) for i in range(n)],
                min(RATE_IN_FLIGHT, n),
                time_cap_s,
                group=f"rate {rate:g}/s",
                consent=consent,
                rate=rate,
                arrivals=arrivals,
            )
        )
    return out


def check_requests(requests: int | None) -> None:
    """--requests within the load runner's bound, checked before any plan is built."""
    if requests is not None and not 1 <= requests <= MAX_REQUESTS:
        raise UsageError(f"--requests must be 1 to {MAX_REQUESTS:,} at each level, not {requests:,}")


def requests_at(level: int, requests: int | None) -> int:
    """Requests sent at a level: as asked, or twice the level (at least 4), so every slot turns over."""
    return requests if requests else max(4, 2 * level)


def plans(
    url: str,
    levels: list[int],
    requests: int | None,
    max_tokens: int,
    prompt: str,
    time_cap_s: float,
    consent: bool = False,
    chat: bool = False,
    cold: bool = True,
) -> list[Plan]:
    """One plan per level, every prompt new (numbered) so no prefix cache answers it; `cold`: each
    also sent with a fresh cache salt where the server takes one."""
    check_requests(requests)
    return [
        Plan(
            url,
            [Request(f"{level}.{i}. {prompt}", max_tokens, chat, cold) for i in range(requests_at(level, requests))],
            level,
            time_cap_s,
            group=f"concurrency {level}",
            consent=consent,
        )
        for level in levels
    ]


def measure(
    client: Client,
    model: str,
    plans: list[Plan],
    slos: dict | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    watch: bool = True,
    fresh: Callable[[], dict] | None = None,
) -> dict:
    """Run each plan in turn; per level its metrics, the server's split of TTFT, and why it stopped
    early if it did. `watch` reads /metrics four times a second while a level runs, for the peaks of
    KV-cache use, running and waiting requests (a little work for the server's API process: off
    when comparing with another tool). `fresh`: the cache-off fields for cold requests (`load.run`)."""
    total, done = sum(len(p.requests) for p in plans), 0
    levels, records = [], []
    for plan in plans:
        tally = server_time.Tally()
        before = scrape(client)
        progress = (lambda d, _t, base=done: on_progress(base + d, total)) if on_progress else None
        if before is not None and watch:
            with server_time.Watch(client, tally, every_s=SAMPLE_S):
                result = run(client, model, plan, progress, fresh)
        else:
            result = run(client, model, plan, progress, fresh)
        tally.add(before, server_time.settled(client, before, len(result.streams)), len(result.streams))
        done += len(plan.requests)
        records += result.streams
        levels.append(level_summary(plan, result.streams, result.stopped, tally, slos))
        if result.stopped and "answered" in result.stopped:
            break  # a 5xx: no higher level
    return {"plans": [p.describe() for p in plans], "levels": levels, "records": records}


def level_summary(plan: Plan, streams: list[Stream], stopped, tally, slos) -> dict:
    """A level's numbers; its wall time is first request sent -> last token (from the records, so a
    --save file gives the same throughput)."""
    return {
        "concurrency": plan.concurrency,
        "rate": plan.rate,  # requests a second (an open loop), or None (the closed loop at `concurrency`)
        "arrivals": plan.arrivals if plan.rate else None,
        "requests": len(plan.requests),
        "max_tokens": plan.requests[0].max_tokens,
        "metrics": bench(streams, span_s(streams) if streams else 0.0, slos),
        "split": tally.report([s.ttft_ms for s in streams]),
        "stopped": stopped,
    }


def name(level: dict) -> str:
    """A level in words: '4 at once' or '2 a second'."""
    return f"{level['concurrency']} at once" if level.get("rate") is None else f"{level['rate']:g} a second"


def best(levels: list[dict]) -> dict | None:
    """The level with the highest output throughput."""
    measured = [lv for lv in levels if lv["metrics"]["output_throughput"]]
    return max(measured, key=lambda lv: lv["metrics"]["output_throughput"], default=None)
