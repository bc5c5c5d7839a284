"""A bounded fill of a server's KV cache, planned, stated and consented to first (docs/course.md §5).

The plan is sized from the server's own allocation: enough long requests that together they need
about 1.5× the cache's tokens, capped at MAX_REQUESTS and MAX_SECONDS and each at the server's
max_model_len, so that the cache runs out and the scheduler must preempt; where even the longest
requests can't ask for that much, the plan says so, with the sum. Most of each request is prompt: a prefill fills blocks in one
pass where decoding fills one token per step, so the cache is full within seconds and the
preemption comes when the running requests next need a block each. While they run, `/metrics` is sampled every half second
(KV usage, running, waiting, preemptions); the fill stops at the first preemption, at the time
cap, or at a 5xx. `/health` is read before and after. A server that is not on this machine is
never filled without the caller's explicit `remote` consent.

`fill` is a generator of (event, data) pairs: the page draws the timeline as the samples arrive.
It shares the load runner's (`load.py`) loopback rule and `/health` check; its own threads, because
a fill must hang up on every request the moment the server preempts.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import httpx

from ..backends.server import Client
from ..backends.server.client import Refused
from ..backends.server.metrics import scrape
from ..errors import ServerError, UsageError
from ..measure.filler import TEXT
from ..measure.load import health, is_loopback

MAX_REQUESTS = 8  # far below the usual max_num_seqs, and the test servers' 8
MAX_SECONDS = 90
EVERY_S = 0.5
TEXT_TOKENS = 66  # the filler text on SmolLM2's tokenizer (other tokenizers: about as many)
PROMPT_TOKENS = 9 * TEXT_TOKENS


@dataclass(frozen=True)
class Plan:
    requests: int
    prompt_tokens: int  # about: the filler text, as the server's tokenizer cuts it
    max_tokens: int  # generated per request (end tokens ignored)
    seconds: float  # the cap: every request is cancelled by then
    cache_tokens: int
    max_model_len: int = 0  # the longest request the server takes

    @property
    def asked(self) -> int:
        return self.requests * (self.prompt_tokens + self.max_tokens)

    def reaches(self) -> bool:
        """Whether the requests together need more than the cache holds (then the scheduler must preempt)."""
        return self.asked > self.cache_tokens

    def text(self) -> str:
        """What the fill will send, in one clause ("sends 5 requests of ..."), and whether it fills."""
        each = self.prompt_tokens + self.max_tokens
        said = (
            f"sends {self.requests} requests of ~{each:,} tokens "
            f"(~{self.prompt_tokens:,} prompt + {self.max_tokens:,} generated) for at most {self.seconds:g} s: "
            f"together ~{self.asked:,} tokens, "
        )
        if self.reaches():
            return said + f"more than the cache's {self.cache_tokens:,}, so expect a preemption"
        return said + f"less than the cache's {self.cache_tokens:,}, so expect no preemption"

    def why_not(self) -> str | None:
        """Why this server's cache can't be filled, with the sum; None when it can."""
        if self.reaches():
            return None
        why = (
            f"{self.requests} requests at once (the fill's cap) × ~{self.prompt_tokens + self.max_tokens:,} tokens each"
        )
        if self.max_model_len:
            why += f" (the server's max_model_len of {self.max_model_len:,}, less a tenth for the tokenizer)"
        return (
            f"Why no preemption: {why} = {self.asked:,} tokens, less than the cache's {self.cache_tokens:,}. "
            "This server's cache can't run out under the fill; a smaller cache (--kv-cache-memory-bytes) or a "
            "longer --max-model-len would. The fill still shows the usage climb."
        )

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "asked": self.asked,
            "reaches": self.reaches(),
            "text": self.text(),
            "why_not": self.why_not(),
        }


def plan(cache_tokens: float | None, max_model_len: int, prompt_tokens: int = PROMPT_TOKENS) -> Plan:
    """Requests of a long prompt and a shorter answer, enough of them to ask for ~1.5× the cache,
    sized from the server's own cache and max_model_len.

    At most MAX_REQUESTS at once (the test servers run 8 at a time; more would only wait): when
    that many of the default length can't ask for 1.5× the cache, each request grows, up to the
    server's max_model_len (less a tenth, since the filler's tokens are counted on SmolLM2's
    tokenizer). When even that is too little, the plan says so, with the sum. The answer stays
    shorter than the prompt: vLLM counts a preemption when the paused request runs again, which
    is when another request finishes and gives its blocks back."""
    if not cache_tokens or not math.isfinite(cache_tokens) or cache_tokens <= 0:
        raise ServerError(
            "the server reports no usable KV cache size (vllm:cache_config_info lacks num_gpu_blocks and "
            "kv_cache_size_tokens, or holds something that is not a number): the fill can't be sized"
        )
    wanted = 1.5 * cache_tokens
    longest = max(TEXT_TOKENS, int(0.9 * max_model_len))  # per request: prompt + generated
    each = min(prompt_tokens + max(32, prompt_tokens // 4), longest)
    if MAX_REQUESTS * each < wanted:  # the default length is too short for this cache: grow it
        each = min(longest, math.ceil(wanted / MAX_REQUESTS))
    generated = max(32, each // 5)
    prompt = max(TEXT_TOKENS, (each - generated) // TEXT_TOKENS * TEXT_TOKENS)  # whole copies of the filler
    generated = max(32, min(generated, longest - prompt))
    requests = math.ceil(wanted / (prompt + generated))
    return Plan(max(2, min(MAX_REQUESTS, requests)), prompt, generated, MAX_SECONDS, int(cache_tokens), max_model_len)


def require_consent(url: str, consent: bool, remote: bool) -> None:
    """The click that follows the stated plan; and, for a server elsewhere, the owner's say-so."""
    if not is_loopback(url) and not remote:
        raise UsageError(
            f"{httpx.URL(url).host} is not this machine: the fill loads a real server, so it runs there only "
            "when you confirm you run it (tick 'I run this server' and start again)"
        )
    if not consent:
        raise UsageError("the fill sends several long requests at once: read its plan, then press Start to consent")


def reading(client: Client, before, start: float) -> dict:
    now = scrape(client)
    if now is None:
        raise ServerError("the server serves no /metrics: the fill has nothing to watch, so it won't start")
    return {
        "t_s": time.monotonic() - start,
        "kv_usage": now.value("kv_usage"),
        "running": now.value("running"),
        "waiting": now.value("waiting"),
        "preemptions": now.delta(before, "preemptions") if before is not None else 0.0,
    }


def fill(client: Client, model: str, the_plan: Plan) -> Iterator[tuple[str, dict]]:
    """Run the plan; yields ("plan"), ("health"), ("sample") every EVERY_S, ("health"), ("done")."""
    yield "plan", the_plan.to_json()
    if health(client) is False:
        raise ServerError(f"{client.root}/health does not answer 200: the fill won't load a server that is not healthy")
    yield "health", {"when": "before", "ok": True}
    before = scrape(client)
    if before is None or before.value("preemptions") is None:
        raise ServerError("the server does not count preemptions in /metrics: the fill has nothing to watch")
    stop, errors, tokens = threading.Event(), [], [0] * the_plan.requests
    prompt = " ".join([TEXT] * max(1, the_plan.prompt_tokens // TEXT_TOKENS))

    def one(i: int) -> None:
        # Each prompt starts with its own number, so no two share cached blocks.
        body = {
            "model": model,
            "prompt": f"{random.randrange(10**9)} {prompt}",
            "max_tokens": the_plan.max_tokens,
            "stream": True,
            "temperature": 0,
            "ignore_eos": True,
        }
        try:
            with client.events("/v1/completions", body) as chunks:
                for _ in chunks:
                    tokens[i] += 1
                    if stop.is_set():
                        return  # leaving the block hangs up: the server drops the request
        except Refused as e:
            errors.append(f"request {i + 1}: {e}")
            if e.status >= 500:
                stop.set()
        except ServerError as e:
            errors.append(f"request {i + 1}: {e}")
            stop.set()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(the_plan.requests)]
    start = time.monotonic()
    for t in threads:
        t.start()
    samples, why = [], "time cap"
    try:
        while True:
            sample = {**reading(client, before, start), "tokens": sum(tokens)}
            samples.append(sample)
            yield "sample", sample
            if sample["preemptions"]:
                why = "preempted"
                break
            if stop.is_set():
                why = "a request failed"
                break
            if not any(t.is_alive() for t in threads):
                why = "all requests finished"
                break
            if sample["t_s"] >= the_plan.seconds:
                break
            time.sleep(EVERY_S)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    ok = health(client) is not False
    yield "health", {"when": "after", "ok": ok}
    yield "done", summary(samples, why, errors, ok)


def summary(samples: list[dict], why: str, errors: list[str], healthy_after: bool) -> dict:
    return {
        "stopped": why,
        "seconds": samples[-1]["t_s"] if samples else 0.0,
        "preemptions": max((s["preemptions"] or 0 for s in samples), default=0),
        "max_kv_usage": max((s["kv_usage"] or 0 for s in samples), default=0),
        "max_waiting": max((s["waiting"] or 0 for s in samples), default=0),
        "tokens": samples[-1]["tokens"] if samples else 0,
        "errors": errors[:5],
        "healthy_after": healthy_after,
    }
