"""The staircase on a connected server: what one step costs as the sequence grows, without and
with the server's KV cache, measured over HTTP on whatever engine `--url` points at.

For a sequence of n tokens:
- without a cache, one step reads all n tokens: `fresh_ms`, the time to first token of a
  completion whose n-token prompt no cache has seen (the server runs every one of the n tokens
  through the model before the first new token exists);
- with the cache, one step reads only the newest token: `itl_ms`, the gap between the streamed
  tokens that follow that prompt (inter-token latency at context n; the prefill is not in it).
One streamed request per length and round gives both: its first token, then `gaps` more.

"No cache has seen it" is made sure twice: every prompt starts with its own number (no two
prompts share a first block), and the request carries the server's own switch where it has one
(`dialects.uncached_fields`: vLLM's per-request `cache_salt` with a new random value, llama.cpp's
`cache_prompt: false`). Prompts are exactly n tokens by the server's `/tokenize` (the embedded
model's tokenizer where the server has none: the same model), sent as token ids where the server
takes them.

`prefix_hits` shows the prefix cache itself: one n-token prompt sent three times: first (a miss),
repeated as it is (the server finds the prefix in its cache), repeated with its cache switched
off or salted anew (a miss again). Hits are read where the server reports them: the usage's
`prompt_tokens_details.cached_tokens`, llama.cpp's `timings.cache_n`, or the `prefix_hits` and
`prefix_queries` counters of its `/metrics` (vLLM counts whole cached blocks only).

API (the page, `tokenloop staircase --url` and later lessons consume the same records):

    measurements(backend, lengths, repeats=2, gaps=8) -> Iterator[Point]     # one per request
    prefix_hits(backend, n) -> list[Hit]                                    # first, repeat, fresh repeat
    measure(backend, max_len=256, points=6, repeats=2, gaps=8) -> dict      # the whole result, as JSON:
        {"model", "engine", "series": [{"n", "fresh_ms", "itl_ms", ...}], "fits", "hits", ...}

`backend` is an open `ServerBackend`.
"""

from __future__ import annotations

import random
import secrets
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

from ..backends.server import ServerBackend, dialects, metrics, wire
from ..errors import UsageError
from ..measure import noise
from ..measure.filler import TEXT
from ..measure.fits import fit_cached, fit_uncached
from ..measure.streamed import Stream, stream_once
from .staircase import check_work, lengths

USAGE = {"stream_options": {"include_usage": True}}  # the closing usage: prompt and cached tokens


@dataclass
class Point:
    """One streamed request: its prompt of n tokens read from scratch, then `gaps` cached steps."""

    n: int
    fresh_ms: float  # time to first token: the whole n-token prompt through the model
    itl_ms: float | None  # median gap between the tokens after the first: one cached step at context ~n
    gaps_ms: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None  # as the server counted them (usage), when it says
    cached_tokens: int | None = None  # the server's own count of prompt tokens it found cached, when it says

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Hit:
    """One send of the prefix-cache check."""

    label: str  # "first", "repeat", "repeat, cache off"
    fresh: bool  # sent with the server's no-cache fields
    ttft_ms: float
    prompt_tokens: int
    hit_tokens: float | None  # prompt tokens the server found in its prefix cache; None: it doesn't say
    queried_tokens: float | None = None  # prompt tokens it looked up (vLLM's metrics)

    def to_json(self) -> dict:
        return asdict(self)


# --- prompts of exactly n tokens -----------------------------------------------------------------
class Prompts:
    """Prompts of exactly n tokens, each one new: its own number first, then the lesson's text."""

    def __init__(self, backend: ServerBackend):
        self.backend = backend
        self.encode, self.decode = tokenizer(backend)
        self.body = self.encode(TEXT)
        self.run = secrets.token_hex(3)  # new for every run: no earlier run's prompt comes back
        self.count = 0

    def ids(self, n: int) -> list[int]:
        self.count += 1
        head = self.encode(f"Prompt {self.count} of run {self.run}. ")
        ids = head + self.body * (n // len(self.body) + 1)
        return ids[:n]

    def prompt(self, ids: list[int]) -> list[int] | str:
        """As the server takes it: ids, or the text they decode to (it may re-tokenize a little differently)."""
        return list(ids) if self.backend.sends_ids else self.decode(ids)


def tokenizer(backend: ServerBackend) -> tuple[Callable[[str], list[int]], Callable[[list[int]], str]]:
    """The server's tokenizer where it has one; else the embedded model's (the same model)."""
    if backend.caps.tokenize is not None and backend.caps.detokenize is not None:
        return backend.encode, backend.decode
    from transformers import AutoTokenizer

    from ..model.files import resolve

    local = AutoTokenizer.from_pretrained(resolve())
    return (lambda text: local.encode(text, add_special_tokens=False)), local.decode


# --- measuring -----------------------------------------------------------------------------------
def check(backend: ServerBackend, max_len: int, points: int, repeats: int, gaps: int) -> None:
    if points < 2:
        raise UsageError(f"--points must be at least 2 to draw a line, not {points}")
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, not {repeats}")
    check_work(points, repeats, 2)
    if gaps < 2:
        raise UsageError(
            f"--gaps must be at least 2 (the tokens after the first that time the cached step), not {gaps}"
        )
    if max_len < points:
        raise UsageError(f"--max-len {max_len} is shorter than --points {points}: give at least one token per point")
    room = backend.context_length - gaps - 1
    if room < points:
        raise UsageError(
            f"the server's context of {backend.context_length} tokens has no room for --points {points} lengths "
            f"and {gaps + 1} new tokens: this server's context is too short for a staircase"
        )
    if max_len > room:
        raise UsageError(
            f"--max-len {max_len} and {gaps + 1} new tokens are over the server's context of "
            f"{backend.context_length} tokens: use --max-len {room} or less"
        )


def send(backend: ServerBackend, prompt: list[int] | str, new_tokens: int, fields: dict) -> Stream:
    return stream_once(backend.client, backend.model, prompt, new_tokens, {**USAGE, **fields})


def point(n: int, stream: Stream) -> Point:
    arrivals = stream.arrivals_ms
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    numbers = wire.server_numbers({"usage": stream.usage, "timings": stream.server})
    return Point(
        n,
        stream.ttft_ms,
        statistics.median(gaps) if gaps else None,
        gaps,
        numbers.get("prompt_tokens"),
        numbers.get("cached_tokens"),
    )


def measurements(
    backend: ServerBackend, lengths_: Sequence[int], repeats: int = 2, gaps: int = 8, seed: int = 0
) -> Iterator[Point]:
    """One `Point` per request, every length once per round in a new shuffled order (so a slow
    spell spreads over all lengths). A warm-up request goes first, untimed."""
    prompts, rng = Prompts(backend), random.Random(seed)
    fresh = lambda: dialects.uncached_fields(backend.dialect, secrets.token_hex(16))  # noqa: E731
    send(backend, prompts.prompt(prompts.ids(min(lengths_))), 2, fresh())
    for _ in range(repeats):
        for n in rng.sample(list(lengths_), len(lengths_)):
            yield point(n, send(backend, prompts.prompt(prompts.ids(n)), gaps + 1, fresh()))


def prefix_hits(backend: ServerBackend, n: int) -> list[Hit]:
    """One n-token prompt sent three times: new (a miss), repeated (a hit, if the server caches
    prefixes), repeated with the cache switched off or salted anew (a miss)."""
    prompts = Prompts(backend)
    prompt = prompts.prompt(prompts.ids(n))
    sends = [("first", False), ("repeat", False), ("repeat, cache off", True)]
    hits = []
    for label, fresh in sends:
        fields = dialects.uncached_fields(backend.dialect, secrets.token_hex(16)) if fresh else {}
        before = metrics.scrape(backend.client)
        stream = send(backend, prompt, 1, fields)
        numbers = wire.server_numbers({"usage": stream.usage, "timings": stream.server})
        hit, queried = numbers.get("cached_tokens"), None
        if before is not None:
            queried, counted = counted_hits(backend, before)
            hit = counted if hit is None else hit
        hits.append(Hit(label, fresh, stream.ttft_ms, numbers.get("prompt_tokens", n), hit, queried))
    return hits


def counted_hits(
    backend: ServerBackend, before: metrics.Snapshot, wait_s: float = 2.0
) -> tuple[float | None, float | None]:
    """(tokens looked up, tokens found) in the prefix cache since `before`. A server may count a
    request a moment after its answer is sent: read again until the lookup shows, for a while."""
    deadline = time.monotonic() + wait_s
    while True:
        now = metrics.scrape(backend.client)
        queried = now.delta(before, "prefix_queries") if now else None
        if queried is None or queried > 0 or time.monotonic() > deadline:
            return queried, (now.delta(before, "prefix_hits") if now else None)
        time.sleep(0.05)


# --- the whole result ----------------------------------------------------------------------------
def summary(lengths_: Sequence[int], found: Sequence[Point]) -> list[dict]:
    """Per length: the least disturbed fresh time (minimum over rounds) and cached step (minimum of
    the per-request medians), with their spreads and every sample."""
    series = []
    for n in sorted(lengths_):
        mine = [p for p in found if p.n == n]
        fresh = [p.fresh_ms for p in mine]
        itl = [p.itl_ms for p in mine if p.itl_ms is not None]
        series.append(
            {
                "n": n,
                "fresh_ms": min(fresh),
                "fresh_spread_ms": max(fresh) - min(fresh),
                "fresh_median_ms": statistics.median(fresh),
                "itl_median_ms": statistics.median(itl) if itl else None,
                "itl_ms": min(itl) if itl else None,
                "itl_spread_ms": max(itl) - min(itl) if itl else None,
                "prompt_tokens": next((p.prompt_tokens for p in mine if p.prompt_tokens is not None), None),
                "fresh_samples_ms": fresh,
                "itl_samples_ms": itl,
            }
        )
    return series


def engine(backend: ServerBackend) -> str:
    """What measured it, in words: 'vLLM 0.32.0'."""
    return " ".join(part for part in (backend.caps.kind, backend.caps.version) if part)


def measure(
    backend: ServerBackend,
    max_len: int = 256,
    points: int = 6,
    repeats: int = 2,
    gaps: int = 8,
    seed: int = 0,
    on_point: Callable[[Point], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """The staircase on the server, as JSON: the series, fits as the embedded staircase makes them
    (`fresh` may bend up with n²; `itl` a line, near flat), the prefix-cache check at max_len, and
    `effect`: the longest length against the shortest, beyond the repeats' spread or not.
    `on_progress(done, total)` sees each request (it may raise to stop the run)."""
    check(backend, max_len, points, repeats, gaps)
    plan = lengths(max_len, points)
    start = time.perf_counter()
    found = []
    for p in measurements(backend, plan, repeats, gaps, seed):
        found.append(p)
        if on_point:
            on_point(p)
        if on_progress:
            on_progress(len(found), len(plan) * repeats + 1)
    series = summary(plan, found)
    xs = [p["n"] for p in series]
    itl = [(p["n"], p["itl_ms"]) for p in series if p["itl_ms"] is not None]
    fits = {"fresh": fit_uncached(xs, [p["fresh_ms"] for p in series]).to_json()}
    if len(itl) >= 2:
        fits["itl"] = fit_cached([n for n, _ in itl], [v for _, v in itl]).to_json()
    hits = prefix_hits(backend, max_len)
    if on_progress:
        on_progress(len(plan) * repeats + 1, len(plan) * repeats + 1)
    first, last = series[0], series[-1]
    effect = {"fresh": noise.effect(first["fresh_samples_ms"], last["fresh_samples_ms"])}
    if first["itl_samples_ms"] and last["itl_samples_ms"]:
        effect["itl"] = noise.effect(first["itl_samples_ms"], last["itl_samples_ms"])
    return {
        "model": backend.model,
        "engine": engine(backend),
        "url": backend.root,
        "max_len": max_len,
        "repeats": repeats,
        "gaps": gaps,
        "series": series,
        "fits": fits,
        "hits": [h.to_json() for h in hits],
        "effect": effect,
        "wall_s": time.perf_counter() - start,
    }
