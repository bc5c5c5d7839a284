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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from . import latency_stats
from .backends.server import Client, ServerBackend, base_url
from .backends.server.discover import discover
from .errors import ServerError, UsageError
from .staircase import r_squared

PROMPT = "The history of the printing press begins"
EXTRA = {"ignore_eos": True, "temperature": 0}


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
@dataclass
class Stream:
    """One streamed request as the client saw it."""

    tokens: int  # max_tokens asked
    arrivals_ms: list[float] = field(default_factory=list)  # when each token chunk arrived
    server: dict | None = None  # the server's own `timings`, when it sends them
    usage: dict | None = None  # the closing `usage` (prompt tokens, cached tokens), when asked for and sent

    @property
    def ttft_ms(self) -> float:
        return self.arrivals_ms[0]

    @property
    def total_ms(self) -> float:
        return self.arrivals_ms[-1]

    @property
    def itl_ms(self) -> float | None:
        gaps = len(self.arrivals_ms) - 1
        return (self.arrivals_ms[-1] - self.arrivals_ms[0]) / gaps if gaps else None


def model_name(client: Client) -> str:
    return discover(client, None).model


def stream_once(client: Client, model: str, prompt: str | list[int], n: int, extra: dict | None = None) -> Stream:
    """One streamed request for n tokens, timing every token chunk from the moment it's sent.
    `extra`: more request fields (e.g. a cache salt, `stream_options`)."""
    body = {"model": model, "prompt": prompt, "max_tokens": n, "stream": True, **EXTRA, **(extra or {})}
    result = Stream(n)
    start = time.perf_counter()
    with client.events("/v1/completions", body) as chunks:
        for chunk in chunks:
            now = (time.perf_counter() - start) * 1000
            choices = chunk.get("choices")
            choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
            # a token: some text, or an empty piece of a longer character before the end
            if choice.get("text") or (choice.get("finish_reason") is None and "text" in choice):
                result.arrivals_ms.append(now)
            timings = chunk.get("timings")
            result.server = timings if isinstance(timings, dict) else result.server
            usage = chunk.get("usage")
            result.usage = usage if isinstance(usage, dict) else result.usage
    if not result.arrivals_ms:
        raise ServerError(f"{client.root} streamed no tokens for max_tokens={n}")
    return result


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
def check(url: str, max_tokens: int, points: int, repeats: int) -> str:
    url = base_url(url)
    if points < 2:
        raise UsageError(f"--points must be at least 2 to draw a line, not {points}")
    if max_tokens < points:
        raise UsageError(
            f"--max-tokens {max_tokens} is less than --points {points}: ask for more tokens or fewer points"
        )
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, not {repeats}")
    return url


def measure(
    url: str,
    max_tokens: int = 64,
    points: int = 5,
    repeats: int = 2,
    prompt: str = PROMPT,
    on_progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
    timeout_s: float = 120,
    slos: dict | None = None,
) -> dict:
    """Streamed requests at several output lengths (interleaved, repeated) and the per-token loop.
    Latency is what a user waits for, so the repeats are summarised by their median."""
    url = check(url, max_tokens, points, repeats)
    sizes = output_lengths(max_tokens, points)
    rng = random.Random(seed)
    order = []
    for _ in range(repeats):
        order += rng.sample(sizes, len(sizes))
    total_work = len(order) + repeats
    backend = ServerBackend(url, timeout=timeout_s, log=lambda message: None)
    client, model = backend.client, backend.model
    try:
        stream_once(client, model, f"0. {prompt}", 2)  # warm-up, not counted
        streams: dict[int, list[Stream]] = {n: [] for n in sizes}
        loops: list[list[float]] = []
        for done, item in enumerate(_interleave(order, repeats), 1):
            fresh = f"{done}. {prompt}"  # a prompt no cache has seen
            if item is None:
                loops.append(loop_once(backend, fresh, max_tokens))
            else:
                streams[item].append(stream_once(client, model, fresh, item))
            if on_progress:
                on_progress(done, total_work)
    finally:
        backend.close()
    return summarize(url, model, max_tokens, repeats, streams, loops, sizes, slos)


def _interleave(order: list[int], repeats: int) -> Iterator[int | None]:
    """The streamed requests in order, with one per-token loop (None) after each round."""
    per_round = len(order) // repeats
    for i, n in enumerate(order, 1):
        yield n
        if i % per_round == 0:
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
                "received": min(len(s.arrivals_ms) for s in runs),
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
        return latency_stats.bench([r.arrivals_ms for r in runs], sum(r.total_ms for r in runs) / 1000, slos)

    for point in series:
        point["metrics"] = metrics(streams[point["tokens"]])
    return {
        "metrics": metrics([r for runs in streams.values() for r in runs]),
        "definitions": latency_stats.DEFINITIONS,
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
