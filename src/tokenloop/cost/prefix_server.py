"""Lesson 8 on a vLLM server: its KV blocks, handed out as a request grows and shared between
requests that start with the same tokens, read from what the server itself reports.

- the block size and count from `vllm:cache_config_info` (never assumed: 128 on the CPU build,
  16 by default on GPUs); occupancy from `vllm:kv_cache_usage_perc`;
- per request, `usage.prompt_tokens_details.cached_tokens` (vLLM's `--enable-prompt-tokens-details`)
  and the server's own time to first token (`--enable-per-request-metrics`), else the client's;
- server-wide, the deltas of `vllm:prefix_cache_queries_total` and `…_hits_total` (in tokens),
  which are this request's only when nothing else ran (`num_requests_running` 0 before and after).

Prompts are sent as token ids, so their lengths are exact. A prompt no cache has seen opens with a
random number, or is sent with a fresh `cache_salt`. Step 5 sends a series of requests one after
another, so it follows the fill's rules: a stated plan, consent, the loopback rule, `/health`
before and after, and it stops at the first 5xx.
"""

from __future__ import annotations

import math
import random
import threading
import time

from ..backends.server.client import Refused
from ..backends.server.metrics import scrape
from ..errors import ServerError
from ..measure.filler import TEXT
from ..measure.load import health
from ..measure.streamed import stream_once
from . import kv_capacity
from .prefix_blocks import fresh, predicted

EVERY_S = 0.1  # step 1's sampling of the usage gauge
OTHER_MAX = 900  # step 5: the longest unique prompt it sends


def geometry(server) -> dict:
    """Block size and count, as the server states them."""
    allocation = kv_capacity.server_allocation(scrape(server.client), server.context_length)
    if not allocation["block_size"]:
        raise ServerError(
            "the server's vllm:cache_config_info has no block_size: this lesson reads it, never assumes it"
        )
    labels = allocation["labels"]
    return {
        "block_size": int(allocation["block_size"]),
        "blocks": int(allocation["blocks"]) if allocation["blocks"] else None,
        "tokens": allocation["tokens"],
        "prefix_caching": labels.get("enable_prefix_caching"),
    }


def caching(server) -> dict:
    """The geometry of a server that shares blocks: refused, with the flag, where prefix caching is off."""
    return sharing(geometry(server))


def sharing(g: dict) -> dict:
    if g["prefix_caching"] == "False":
        raise ServerError(
            "this server runs with prefix caching off (--no-enable-prefix-caching): it shares no blocks between "
            "requests, so steps 2-6 have nothing to show; start it without that flag"
        )
    return g


def prompt(server, n: int, tag: str | None = None) -> list[int]:
    """n token ids of the filler text, opened by `tag` (default: a random number, a prompt no cache holds)."""
    ids = server.encode(f"{tag if tag is not None else fresh()} {TEXT}")
    more = server.encode(TEXT)
    while len(ids) < n:
        ids += more
    return ids[:n]


def send(server, ids: list[int], salt: str | None = None) -> dict:
    """One prompt, one answer token, streamed: what the server says it reused, and how long it took."""
    extra = {"cache_salt": salt} if salt else {}
    s = stream_once(server.client, server.model, ids, 1, extra)
    own = (s.metrics or {}).get("time_to_first_token_ms")
    return {
        "prompt_tokens": s.prompt_tokens if s.prompt_tokens is not None else len(ids),
        "cached_tokens": s.cached_tokens,
        "client_ttft_ms": s.ttft_ms,
        "server_ttft_ms": own,
        "ms": own if own is not None else s.ttft_ms,
    }


def request(server, ids: list[int], salt: str | None = None) -> dict:
    """The request `send` makes, for "See it raw" (the prompt's ids shortened to their count)."""
    body = {"model": server.model, "prompt": f"<{len(ids)} token ids>", "max_tokens": 1, "stream": True}
    return {"path": "/v1/completions", "body": {**body, **({"cache_salt": salt} if salt else {})}}


def needs_details(sent: dict) -> None:
    if sent["cached_tokens"] is None:
        raise ServerError(
            "the server sends no usage.prompt_tokens_details.cached_tokens: start vLLM with "
            "--enable-prompt-tokens-details to see how many prompt tokens it reused"
        )


def growth(server, tokens: int, on_progress=None) -> dict:
    """Step 1: one streamed request alone, `tokens` long; `kv_cache_usage_perc` read every EVERY_S,
    each reading turned into blocks (× the block count) and each jump of one block marked."""
    g = geometry(server)
    if not g["blocks"]:
        raise ServerError("the server's vllm:cache_config_info has no num_gpu_blocks: no blocks to count")
    before = scrape(server.client)
    alone = (before.value("running") or 0) == 0
    ids = prompt(server, 8)
    body = {
        "model": server.model,
        "prompt": ids,
        "max_tokens": tokens,
        "stream": True,
        "temperature": 0,
        "ignore_eos": True,
        "cache_salt": fresh(),
    }
    counted, done, failed = [0], threading.Event(), []

    def run():
        try:
            with server.client.events("/v1/completions", body) as chunks:
                for _ in chunks:
                    counted[0] += 1
        except ServerError as e:
            failed.append(str(e))
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    start = time.monotonic()
    thread.start()
    samples = []
    while True:
        usage = scrape(server.client).value("kv_usage")
        blocks = round((usage or 0) * g["blocks"])
        samples.append(
            {"t_s": time.monotonic() - start, "usage": usage, "blocks": blocks, "tokens": len(ids) + counted[0]}
        )
        if on_progress:
            on_progress(min(counted[0], tokens), tokens)
        if done.is_set():
            break
        time.sleep(EVERY_S)
    thread.join(10)
    if failed:
        raise ServerError(f"the long request failed: {failed[0]}")
    busy = [s for s in samples if s["blocks"]]
    jumps = [b for a, b in zip(busy, busy[1:]) if b["blocks"] > a["blocks"]]
    return {
        **g,
        "prompt_tokens": len(ids),
        "generated": tokens,
        "samples": samples,
        "jumps": jumps,
        "first_blocks": busy[0]["blocks"] if busy else 0,
        "last_blocks": max((s["blocks"] for s in samples), default=0),
        "expected_blocks": math.ceil((len(ids) + tokens) / g["block_size"]),
        "one_block": 1 / g["blocks"],
        "alone": alone,
        "request": {"path": "/v1/completions", "body": {**body, "prompt": f"<{len(ids)} token ids>"}},
    }


def repeat(server, n: int) -> dict:
    """Step 2: the same n-token prompt twice under one fresh salt (so the first is new to the cache);
    a warm-up request first, not counted; the prefix counters read around the second."""
    g = caching(server)
    send(server, prompt(server, n), salt=fresh())  # warm-up
    ids, salt = prompt(server, n), fresh()
    first = send(server, ids, salt)
    needs_details(first)
    before = scrape(server.client)
    second = send(server, ids, salt)
    after = scrape(server.client)
    alone = (before.value("running") or 0) == 0 and (after.value("running") or 0) == 0
    return {
        "block_size": g["block_size"],
        "first": first,
        "second": second,
        "speedup": first["ms"] / second["ms"] if second["ms"] else None,
        "delta_queries": after.delta(before, "prefix_queries"),
        "delta_hits": after.delta(before, "prefix_hits"),
        "alone": alone,
        "predicted": predicted(len(ids), g["block_size"]),
        "request": request(server, ids, salt),
    }


def two_blocks(server) -> dict:
    """Step 3: a prompt of exactly two of the server's blocks, and one of two blocks and a token, each twice."""
    block = caching(server)["block_size"]
    rows = []
    for n in (2 * block, 2 * block + 1):
        ids, salt = prompt(server, n), fresh()
        send(server, ids, salt)
        again = send(server, ids, salt)
        needs_details(again)
        rows.append(
            {"tokens": n, "cached_tokens": again["cached_tokens"], "predicted": predicted(n, block), "ms": again["ms"]}
        )
    return {"block_size": block, "rows": rows, "request": request(server, ids, "<fresh salt>")}


def one_word(server, n: int, from_end: int = 8) -> dict:
    """Step 4: the prompt cached, then sent with its first token changed, and with one `from_end` before its end."""
    from .prefix_blocks import changed

    block = caching(server)["block_size"]
    ids, salt = prompt(server, n), fresh()
    base = send(server, ids, salt)
    needs_details(base)
    rows = []
    for name, position in (("first", 0), ("near the end", n - from_end)):
        sent = send(server, changed(ids, position), salt)
        rows.append({"change": name, "position": position, **sent, "predicted": position // block * block})
    return {"block_size": block, "tokens": n, "base": base, "rows": rows, "request": request(server, ids, salt)}


def survival_plan(server, n: int, fractions=(0.25, 0.5, 1, 2)) -> dict:
    """Step 5's plan, from the server's own cache size: what it sends, stated before anything is."""
    g = caching(server)
    each = max(g["block_size"], min(OTHER_MAX, server.context_length - 16, int(g["tokens"] or OTHER_MAX)))
    rounds = [max(1, math.ceil(f * (g["tokens"] or 0) / each)) for f in fractions]
    requests = 1 + sum(rounds) + len(fractions)
    tokens = n * (1 + len(fractions)) + each * sum(rounds)
    text = (
        f"sends {requests} requests one after another, none at the same time: your {n}-token prompt, then for "
        f"each of {', '.join(f'{f:g}×' for f in fractions)} the cache's {int(g['tokens'] or 0):,} tokens, that much "
        f"other traffic ({', '.join(map(str, rounds))} unique prompts of {each} tokens) and your prompt again; "
        f"~{tokens:,} prompt tokens in all, one answer token each. It evicts whatever else the cache holds"
    )
    return {
        **g,
        "prompt_tokens": n,
        "fractions": list(fractions),
        "rounds": rounds,
        "each": each,
        "requests": requests,
        "text": text,
    }


def survival(server, n: int, fractions=(0.25, 0.5, 1, 2), on_progress=None) -> dict:
    """Step 5: how much of P is still cached after each amount of other traffic. `/health` before and
    after; stops at the first 5xx."""
    plan = survival_plan(server, n, fractions)
    if health(server.client) is False:
        raise ServerError(f"{server.root}/health says the server is not healthy: nothing was sent")
    ids, salt = prompt(server, n), fresh()
    sent, stopped, rounds = 0, None, []
    try:
        needs_details(send(server, ids, salt))
        sent += 1
        for fraction, others in zip(fractions, plan["rounds"]):
            for _ in range(others):
                send(server, prompt(server, plan["each"]), salt)
                sent += 1
                if on_progress:
                    on_progress(sent, plan["requests"])
            again = send(server, ids, salt)
            sent += 1
            rounds.append(
                {
                    "fraction": fraction,
                    "other_requests": others,
                    "other_tokens": others * plan["each"],
                    "cached_tokens": again["cached_tokens"],
                    "ms": again["ms"],
                }
            )
    except Refused as e:
        if e.status < 500:
            raise
        stopped = f"the server answered {e.status} ({e.server_message}): stopped there"
    return {
        **plan,
        "rounds_done": rounds,
        "sent": sent,
        "stopped": stopped,
        "most": predicted(n, plan["block_size"]),
        "healthy_after": health(server.client) is not False,
        "request": request(server, ids, salt),
    }


def side_channel(server, n: int) -> dict:
    """Step 6: a victim sends P; a probe times P and another prompt of the same length; then again
    with one `cache_salt` per tenant, and the victim's own re-send. A warm-up request first."""
    block = caching(server)["block_size"]
    send(server, prompt(server, n), salt=fresh())  # warm-up
    secret = prompt(server, n)
    send(server, secret)  # the victim, no salt
    shared = {"probe_same": send(server, secret), "probe_other": send(server, prompt(server, n))}
    needs_details(shared["probe_same"])
    secret, tenant = prompt(server, n), str(random.randrange(10**6))
    send(server, secret, salt=f"tenant-a-{tenant}")  # the victim, salted
    salted = {
        "probe_same": send(server, secret, salt=f"tenant-b-{tenant}"),
        "owner_again": send(server, secret, salt=f"tenant-a-{tenant}"),
    }
    return {
        "block_size": block,
        "tokens": n,
        "shared": shared,
        "salted": salted,
        "request": request(server, secret, f"tenant-b-{tenant}"),
    }
