"""Latency as a user feels it: time to first token (TTFT), time between tokens (ITL), and the total.

An answer of n tokens is n forward passes, so

    total(n) ≈ TTFT + (n - 1) × ITL

and for any real answer length the (n - 1) × ITL term dominates. Two ways to get n tokens from
an OpenAI-compatible server are measured side by side, client side, over plain HTTP:
- one streamed request (`stream: true, max_tokens: n`): the server runs the loop;
- one request per token (`max_tokens: 1`, the text so far as the prompt): our loop, over HTTP.

Every answer is exactly n tokens (`ignore_eos`, known to llama.cpp and vLLM). Each streamed
request starts with its own number, so no server can answer it from a cached prompt: its TTFT is a
new visitor's. The per-token loop runs with the server's defaults: a server with a prefix cache
(llama.cpp, vLLM) reuses the text it has already read, so each call reads only the newest token;
without that cache every call would read the whole text again, the staircase once more.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence

from ..backends.server import Client, ServerBackend, base_url
from ..backends.server.dialects import uncached_fields
from ..backends.server.discover import discover
from ..backends.server.metrics import scrape
from ..errors import UsageError
from ..measure import bench_stats
from ..measure.fits import r_squared
from ..measure.streamed import Stream, bench, stream_once
from . import account, histogram_floor, server_time
from . import definitions as latency_definitions

PROMPT = "The history of the printing press begins"
LOOPS = 3  # per-token loops in a run (the command's default run is in commands/latency/)


# --- the budget (pure) -------------------------------------------------------------------------
def total_ms(ttft_ms: float, itl_ms: float, tokens: int) -> float:
    """The first token after TTFT, each next one ITL later."""
    return ttft_ms + (tokens - 1) * itl_ms


def budget(ttft_ms: float, itl_ms: float, tokens: int = 500) -> dict:
    """How long an answer of `tokens` takes, and the rates a user sees."""
    if ttft_ms < 0:
        raise UsageError(f"--ttft must be 0 or more milliseconds, not {ttft_ms:g}")
    if itl_ms <= 0:
        raise UsageError(f"--itl must be more than 0 milliseconds, not {itl_ms:g}")
    if tokens < 1:
        raise UsageError(f"--tokens must be at least 1, not {tokens}")
    total = total_ms(ttft_ms, itl_ms, tokens)
    sizes = sorted({1, 10, 100, tokens, 1000} | ({tokens * 4} if tokens > 1000 else set()))
    return {
        "ttft_ms": ttft_ms,
        "itl_ms": itl_ms,
        "tokens": tokens,
        "total_ms": total,
        "tokens_per_s_seen": 1000 * tokens / total,  # the whole answer, waiting included
        "stream_tokens_per_s": 1000 / itl_ms,  # how fast text flows once it has started
        "ttft_share": ttft_ms / total if total else 1.0,
        "table": [
            {
                "tokens": n,
                "total_ms": total_ms(ttft_ms, itl_ms, n),
                "ttft_share": ttft_ms / total_ms(ttft_ms, itl_ms, n) if total_ms(ttft_ms, itl_ms, n) else 1.0,
            }
            for n in sizes
        ],
    }


def fit_total(runs: Sequence[Sequence[float]]) -> dict:
    """total(n) ≈ TTFT + (n - 1) × ITL, from runs of arrival times (ms after each request was sent).

    TTFT: the median time to the first token over all runs (what a user typically waits).
    ITL: the least-squares slope, through the origin, of every later token's time after its own
    run's first token; measured per run, so a slow spell in one run does not tilt the line.
    R² and the error are over every (n, time until token n) point of every run."""
    runs = [run for run in runs if run]
    ttft = statistics.median(run[0] for run in runs)
    after = [(k, t - run[0]) for run in runs for k, t in enumerate(run[1:], 1)]
    itl = sum(k * dt for k, dt in after) / sum(k * k for k, _ in after) if after else 0.0
    points = [(n, t) for run in runs for n, t in enumerate(run, 1)]
    predicted = [ttft + (n - 1) * itl for n, _ in points]
    times = [t for _, t in points]
    rmse = statistics.fmean((t - p) ** 2 for t, p in zip(times, predicted)) ** 0.5
    return {
        "ttft_ms": ttft,
        "itl_ms": itl,
        "r2": r_squared(times, predicted),
        "rmse_ms": rmse,
        "formula": f"{ttft:.1f} ms + (n - 1) × {itl:.2f} ms",
    }


def curve(runs: Sequence[Sequence[float]]) -> list[dict]:
    """Time until the k-th token, for every k: the k-th arrival of any run that got that far is a
    measurement of an answer k tokens long. Each k keeps the median of those runs."""
    longest = max((len(run) for run in runs), default=0)
    return [
        {"tokens": k, "total_ms": statistics.median(run[k - 1] for run in runs if len(run) >= k)}
        for k in range(1, longest + 1)
    ]


def output_lengths(max_tokens: int, points: int) -> list[int]:
    """1 (the first token alone) and evenly spaced lengths up to max_tokens."""
    return sorted({1} | {round(max_tokens * i / (points - 1)) for i in range(1, points)})


# --- talking to the server ---------------------------------------------------------------------
def model_name(client: Client) -> str:
    return discover(client, None).model


def loop_once(backend: ServerBackend, prompt: str, n: int) -> list[float]:
    """Our loop over HTTP: n requests of one token each, the prompt as token ids (as `tokenloop run
    --url` sends it). Returns the time after each request."""
    ids = backend.encode(prompt)
    done, start = [], time.perf_counter()
    for _ in range(n):
        answer = backend.complete(ids, 1)
        ids.append(answer.server_pick if answer.server_pick is not None else answer.scores.token_id(0))
        done.append((time.perf_counter() - start) * 1000)
    return done


# --- measuring ---------------------------------------------------------------------------------
def cost_per_million(usd_per_hour: float, tokens_per_s: float | None) -> float | None:
    """What a million output tokens cost on a server rented by the hour, at a measured rate."""
    return usd_per_hour / (tokens_per_s * 3600) * 1e6 if tokens_per_s else None


MAX_RUN = 100_000  # requests in one run (about a day at the default lengths on a fast server)


def check(url: str, max_tokens: int, points: int, repeats: int) -> str:
    """The options, checked by arithmetic before any list of work is built."""
    url = base_url(url)
    if points < 2:
        raise UsageError(f"--points must be at least 2 to draw a line, not {points}")
    if max_tokens < points:
        raise UsageError(
            f"--max-tokens {max_tokens} is less than --points {points}: ask for more tokens or fewer points"
        )
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, not {repeats}")
    requests = points * repeats + loop_rounds(repeats) * max_tokens
    if requests > MAX_RUN:
        raise UsageError(
            f"--points {points} × --repeats {repeats} streamed, and {loop_rounds(repeats)} loops of --max-tokens "
            f"{max_tokens} one-token calls, are {requests:,} requests: at most {MAX_RUN:,} in one run; lower them"
        )
    return url


def measure(
    url: str,
    max_tokens: int,
    points: int,
    repeats: int,
    prompt: str = PROMPT,
    on_progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
    timeout_s: float = 120,
    slos: dict | None = None,
    chat: bool = False,
    cache: str = "cold",
) -> dict:
    """Streamed requests at several output lengths (interleaved, repeated) and the per-token loop.
    Latency is what a user waits for, so the repeats are summarised by their median. Where the
    server has `/metrics`, it is read just before and after each streamed request (`ttft_split`).
    `cache`: "cold" sends each streamed request with a fresh cache salt where the server takes one
    (`dialects.uncached_fields`); "warm" lets the prefix cache serve what it holds (then the same
    options send the same prompts again, so a second run finds the first one's blocks)."""
    url = check(url, max_tokens, points, repeats)
    sizes = output_lengths(max_tokens, points)
    rng = random.Random(seed)
    order = []
    for _ in range(repeats):
        order += rng.sample(sizes, len(sizes))
    total_work = len(order) + loop_rounds(repeats)
    backend = ServerBackend(url, timeout=timeout_s, log=lambda message: None)
    client, model = backend.client, backend.model
    tally = server_time.Tally()
    try:
        stream_once(client, model, f"0. {prompt}", 2, chat=chat)  # warm-up, not counted
        metrics = scrape(client) is not None
        streams: dict[int, list[Stream]] = {n: [] for n in sizes}
        loops: list[list[float]] = []
        for done, item in enumerate(_interleave(order, repeats), 1):
            fresh = f"{done}. {prompt}"  # a prompt no cache has seen
            if item is None:
                loops.append(loop_once(backend, fresh, max_tokens))
            else:
                before = scrape(client) if metrics else None
                extra = uncached_fields(backend.dialect, uuid.uuid4().hex) if cache == "cold" else None
                streams[item].append(stream_once(client, model, fresh, item, extra, chat=chat, group=f"length {item}"))
                tally.add(before, server_time.settled(client, before, 1), 1)
            if on_progress:
                on_progress(done, total_work)
    finally:
        backend.close()
    data = summarize(url, model, max_tokens, repeats, streams, loops, sizes, slos)
    every = [r for runs in streams.values() for r in runs]
    data["split"] = tally.report([r.ttft_ms for r in every]) or server_time.from_timings(every)
    data["account"] = account.account(every)
    data["warmth"] = account.warmth(
        every, data["split"] if data["split"] and data["split"]["source"] == "/metrics" else None
    )
    gaps = [gap for r in every for gap in bench_stats.per_request(r.arrivals_ms, r.tokens)["itl"]]
    data["histogram_floor"] = histogram_floor.floor(tally.itl_buckets, gaps)
    data["chat"] = chat
    data["records"] = every  # the raw records (for --save), not part of the JSON
    return data


def loop_rounds(repeats: int) -> int:
    """How many per-token loops run: one after each of up to LOOPS rounds, spread over the run (a
    loop of max_tokens calls costs more than a round of streams, and its fit needs only a few)."""
    return min(repeats, LOOPS)


def _interleave(order: list[int], repeats: int) -> Iterator[int | None]:
    """The streamed requests in order, with a per-token loop (None) after the chosen rounds."""
    per_round, loops = len(order) // repeats, loop_rounds(repeats)
    after = {round((k + 1) * repeats / loops) for k in range(loops)}
    for i, n in enumerate(order, 1):
        yield n
        if i % per_round == 0 and i // per_round in after:
            yield None


def summarize(
    url: str,
    model: str,
    max_tokens: int,
    repeats: int,
    streams: dict[int, list[Stream]],
    loops: list[list[float]],
    sizes: Sequence[int],
    slos: dict | None = None,
) -> dict:
    median = statistics.median
    series = []
    for n in sizes:
        runs = streams[n]
        totals = [s.total_ms for s in runs]
        itls = [s.itl_ms for s in runs if s.itl_ms is not None]
        series.append(
            {
                "tokens": n,
                "received": min(s.tokens for s in runs),
                "ttft_ms": median(s.ttft_ms for s in runs),
                "itl_ms": median(itls) if itls else None,
                "total_ms": median(totals),
                "total_spread_ms": max(totals) - min(totals),
                "server_prompt_ms": _server(runs, "prompt_ms"),
                "server_itl_ms": _server(runs, "predicted_per_token_ms"),
            }
        )
    loop_series = [
        {
            "tokens": n,
            "total_ms": median(run[n - 1] for run in loops),
            "total_spread_ms": max(run[n - 1] for run in loops) - min(run[n - 1] for run in loops),
        }
        for n in sizes
    ]
    arrivals = [s.arrivals_ms for runs in streams.values() for s in runs]
    server_prompt = [p["server_prompt_ms"] for p in series if p["server_prompt_ms"] is not None]
    server_itl = [p["server_itl_ms"] for p in series if p["server_itl_ms"] is not None and p["tokens"] > 1]

    def metrics(runs: list[Stream]) -> dict:  # one request at a time: together they took the sum of their E2ELs
        return bench(runs, sum(r.total_ms for r in runs) / 1000, slos)

    for point in series:
        point["metrics"] = metrics(streams[point["tokens"]])
    return {
        "metrics": metrics([r for runs in streams.values() for r in runs]),
        "definitions": bench_stats.DEFINITIONS,
        "by_tool": latency_definitions.side_by_side([r for runs in streams.values() for r in runs]),
        "url": url,
        "model": model,
        "max_tokens": max_tokens,
        "points": len(sizes),
        "repeats": repeats,
        "series": series,
        "curve": curve(arrivals),
        "fit": fit_total(arrivals),
        "server": {
            "prompt_ms": statistics.median(server_prompt) if server_prompt else None,
            "itl_ms": statistics.median(server_itl) if server_itl else None,
        },
        "loop": {"series": loop_series, "curve": curve(loops), "fit": fit_total(loops)},
    }


def _server(runs: list[Stream], key: str) -> float | None:
    values = [s.server[key] for s in runs if s.server and key in s.server]
    return statistics.median(values) if values else None
