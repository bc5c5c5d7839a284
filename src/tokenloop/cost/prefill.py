"""Lesson 3: every request is a prefill (the whole prompt in one pass, ending in the first token)
and then decode (one pass per further token). Measured, never computed:

- `phases`: at several prompt lengths n, the prefill's time (a forward over n tokens, nothing
  cached: the time to first token) beside one decode step at the same context (one new token
  against a cache of n). In this process with `staircase.samples`; on a server with
  `server_staircase.measurements` (a fresh prompt's TTFT, a new `cache_salt` each, and the
  streamed gaps after it). Fitted as a line: its slope is what one more prompt token costs.
- `ratio`: what an output token costs against a prompt token, from those same measurements: the
  decode step's time divided by the prefill's slope.
- `answer_vs_prompt`: a long answer to a short prompt against a long prompt with a one-token
  answer, both timed (the long answer projected from the decode steps timed, and said so).
- `positions`: the prefill scores every position, not only the last: the (T, V) logits of the
  from-scratch forward, each position's top-1 beside the prompt token that really came next; on
  vLLM the server's own per-position top-1 (`prompt_logprobs`).
- `ttft_account`: where the time to first token went. On a server, each request's own account
  (`latency/account.py`: queue + server TTFT + the rest); in this process, tokenize + forward + the
  rest.
"""

from __future__ import annotations

import random
import secrets
import statistics
import time
from collections.abc import Callable

from ..measure import noise
from ..measure.filler import token_ids
from ..measure.fits import fit_polynomial
from .server_staircase import Prompts, measurements, send
from .staircase import samples

Progress = Callable[[int, int], None] | None
FRACTIONS = (1 / 15, 1 / 4, 1 / 2, 3 / 4, 1)  # "make the prompt 15× longer", with points between


def lengths(longest: int) -> list[int]:
    return sorted({max(4, round(longest * f)) for f in FRACTIONS})


# --- step 1: the two phases against the prompt's length --------------------------------------------
def phases(backend, longest: int = 512, repeats: int = 3, seed: int = 0, on_progress: Progress = None) -> dict:
    """In this process: per length, a forward over n tokens with no cache (the prefill) and one
    cached step at context n (a decode step), in a shuffled order, `repeats` times each."""
    plan = lengths(min(longest, backend.context_length - 1))
    rng = random.Random(seed)
    order = [(n, kind) for _ in range(repeats) for n in rng.sample(plan, len(plan)) for kind in ("uncached", "cached")]
    prefill: dict[int, list[float]] = {n: [] for n in plan}
    decode: dict[int, list[float]] = {n: [] for n in plan}
    for done, s in enumerate(samples(backend, token_ids(backend, max(plan)), order), 1):
        (prefill if s.kind == "uncached" else decode)[s.length].append(s.ms)
        if on_progress:
            on_progress(done, len(order))
    return result(plan, prefill, decode, repeats, "embedded")


def server_phases(
    backend, longest: int = 512, repeats: int = 2, gaps: int = 8, seed: int = 0, on_progress: Progress = None
) -> dict:
    """On a server: a fresh prompt's time to first token (a new cache salt each) and the median gap
    between the tokens streamed after it."""
    plan = lengths(min(longest, backend.context_length - gaps - 1))
    prefill: dict[int, list[float]] = {n: [] for n in plan}
    decode: dict[int, list[float]] = {n: [] for n in plan}
    for done, p in enumerate(measurements(backend, plan, repeats, gaps, seed), 1):
        prefill[p.n].append(p.fresh_ms)
        if p.itl_ms is not None:
            decode[p.n].append(p.itl_ms)
        if on_progress:
            on_progress(done, len(plan) * repeats)
    return result(plan, prefill, decode, repeats, "server")


def result(plan: list[int], prefill: dict, decode: dict, repeats: int, on: str) -> dict:
    """Per length the medians and ranges; the prefill fitted as a line (its slope: ms per prompt
    token); whether the longest prompt's TTFT and ITL beat the noise against the shortest's."""
    series = []
    for n in plan:
        p = noise.spread(prefill[n])
        d = noise.spread(decode[n]) if decode[n] else None
        series.append(
            {
                "n": n,
                "ttft_ms": p["median"],
                "ttft_low_ms": p["low"],
                "ttft_high_ms": p["high"],
                "itl_ms": d["median"] if d else None,
                "itl_low_ms": d["low"] if d else None,
                "itl_high_ms": d["high"] if d else None,
                "ttft_samples_ms": prefill[n],
                "itl_samples_ms": decode[n],
            }
        )
    fit = fit_polynomial([s["n"] for s in series], [s["ttft_ms"] for s in series], 1)
    first, last = series[0], series[-1]
    itls = [s["itl_ms"] for s in series if s["itl_ms"] is not None]
    return {
        "on": on,
        "series": series,
        "repeats": repeats,
        "fit": fit.to_json(),
        "shortest": first["n"],
        "longest": last["n"],
        "length_ratio": last["n"] / first["n"],
        "ttft_ratio": last["ttft_ms"] / first["ttft_ms"],
        "itl_ratio": last["itl_ms"] / first["itl_ms"] if first["itl_ms"] and last["itl_ms"] else None,
        "itl_ms": statistics.median(itls) if itls else None,
        "effect": {
            "ttft": noise.effect(first["ttft_samples_ms"], last["ttft_samples_ms"]),
            "itl": noise.effect(first["itl_samples_ms"], last["itl_samples_ms"])
            if first["itl_samples_ms"] and last["itl_samples_ms"]
            else None,
        },
    }


# --- step 2: an output token against a prompt token, from step 1's numbers -------------------------
def ratio(phased: dict) -> dict:
    """The decode step's median time ÷ the prefill's slope: how many prompt tokens one output token
    costs. None where the slope is not positive (the prefill did not grow beyond its noise)."""
    slope = phased["fit"]["b_ms_per_token"]
    itl = phased["itl_ms"]
    return {
        "itl_ms": itl,
        "slope_ms_per_token": slope,
        "ratio": itl / slope if itl and slope > 0 else None,
        "shortest": phased["shortest"],
        "longest": phased["longest"],
        "on": phased["on"],
        "fit": phased["fit"],
    }


# --- step 3: a long answer against a long prompt ---------------------------------------------------
def answer_vs_prompt(backend, short_ids: list[int], tokens: int = 500, steps: int = 16, repeats: int = 3) -> dict:
    """In this process: a `tokens`-token prompt run once for its one-token answer (a forward over
    every prompt token, no cache: timed `repeats` times, median), against a `tokens`-token answer to
    the short prompt: its prefill and `steps` decode steps timed, the rest projected at their median."""
    tokens = min(tokens, backend.context_length - 1)
    long_ids = token_ids(backend, tokens)
    backend.forward(long_ids[:8], None)  # warm-up, untimed
    prompt_ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.forward(long_ids, None)
        prompt_ms.append((time.perf_counter() - start) * 1000)
    cache = backend.new_cache()
    start = time.perf_counter()
    scores = backend.forward(short_ids, cache)
    first_ms = (time.perf_counter() - start) * 1000
    ids, gaps = list(short_ids), []
    steps = min(steps, tokens - 1)
    for _ in range(steps):  # greedy, past any end token: the point is the time of a step
        ids.append(scores.token_id(int(scores.values.argmax())))
        start = time.perf_counter()
        scores = backend.forward(ids, cache)
        gaps.append((time.perf_counter() - start) * 1000)
    return answer_result(len(short_ids), tokens, first_ms, gaps, prompt_ms, "embedded")


def server_answer_vs_prompt(backend, short: str, tokens: int = 500, repeats: int = 3) -> dict:
    """On a server, each request with a fresh cache salt: the long prompt with `max_tokens` 1
    (its whole time, median of `repeats`), and the short prompt streamed for `tokens` tokens (its
    first token and every gap timed; if it ends early, the rest projected at the median gap)."""
    from ..backends.server import dialects

    prompts = Prompts(backend)
    tokens = min(tokens, backend.context_length - 2)
    fresh = lambda: dialects.uncached_fields(backend.dialect, secrets.token_hex(16))  # noqa: E731
    send(backend, prompts.prompt(prompts.ids(8)), 2, fresh())  # warm-up, untimed
    prompt_ms = [send(backend, prompts.prompt(prompts.ids(tokens)), 1, fresh()).total_ms for _ in range(repeats)]
    short_ids = prompts.encode(short)
    streamed = send(backend, prompts.prompt(short_ids), tokens, fresh())
    arrivals = streamed.arrivals_ms
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    return answer_result(len(short_ids), tokens, streamed.ttft_ms, gaps, prompt_ms, "server")


def answer_result(short: int, tokens: int, first_ms: float, gaps: list[float], prompt_ms: list[float], on: str) -> dict:
    step = statistics.median(gaps) if gaps else 0.0
    rest = tokens - 1 - len(gaps)  # steps not timed: projected at the median step
    answer_ms = first_ms + sum(gaps) + rest * step
    prompt = statistics.median(prompt_ms)
    return {
        "on": on,
        "tokens": tokens,
        "short_prompt_tokens": short,
        "long_answer": {
            "ms": answer_ms,
            "first_ms": first_ms,
            "step_ms": step,
            "timed_steps": len(gaps),
            "projected_steps": rest,
        },
        "long_prompt": {"ms": prompt, "samples_ms": prompt_ms},
        "ratio": answer_ms / prompt if prompt else None,
        "longer": "answer" if answer_ms > prompt else "prompt",
    }


# --- step 4: one prediction at every prompt position -----------------------------------------------
def positions(backend, ids: list[int]) -> dict:
    """One forward over the prompt, as the prefill runs it: logits (T, V), one row per position
    (the backend's `all_logits`). Each row's top-1 beside the token that really comes next."""
    import torch

    tokenizer = backend.token_text
    start = time.perf_counter()
    logits = backend.all_logits(ids).float()  # (T, V)
    ms = (time.perf_counter() - start) * 1000
    top = logits.argmax(dim=-1).tolist()
    probs = torch.softmax(logits, dim=-1)
    rows = []
    for i, tid in enumerate(ids):
        nxt = ids[i + 1] if i + 1 < len(ids) else None
        rows.append(
            {
                "position": i,
                "token": tokenizer(tid),
                "top1": tokenizer(top[i]),
                "top1_id": top[i],
                "top1_prob": float(probs[i, top[i]]),
                "next": tokenizer(nxt) if nxt is not None else None,
                "next_prob": float(probs[i, nxt]) if nxt is not None else None,
                "hit": nxt is not None and top[i] == nxt,
            }
        )
    return {
        "shape": list(logits.shape),
        "tokens": len(ids),
        "vocab": int(logits.shape[1]),
        "rows": rows,
        "hits": sum(r["hit"] for r in rows),
        "ms": ms,
        "on": "embedded",
    }


def server_positions(backend, ids: list[int]) -> dict:
    """On vLLM: the same rows from the server's own prefill. `prompt_logprobs` (a vLLM extension)
    gives, for every prompt position after the first, the logprob of the token there and the
    top-ranked token after the prefix before it (entry 0 is null: nothing precedes the first
    token); the last position's prediction is the answer's first token, greedy (its `logprobs`).
    So row i's top-1 is entry i + 1's rank-1 token, as the embedded rows are the logits' argmax."""
    import math

    body = {
        "model": backend.model,
        "prompt": list(ids),
        "max_tokens": 1,
        "temperature": 0,
        "prompt_logprobs": 1,
        "logprobs": 1,
        "return_tokens_as_token_ids": True,
    }
    start = time.perf_counter()
    data = backend.client.call("POST", "/v1/completions", body)
    ms = (time.perf_counter() - start) * 1000
    choice = (data.get("choices") or [{}])[0] if isinstance(data, dict) else {}
    entries = choice.get("prompt_logprobs")
    if not isinstance(entries, list) or len(entries) != len(ids):
        from ..errors import ServerError

        raise ServerError(
            f"the server at {backend.root} answered prompt_logprobs with "
            f"{len(entries) if isinstance(entries, list) else 'no'} entries for a {len(ids)}-token prompt"
        )
    tops = [_prompt_top(e) for e in entries[1:]] + [_answer_top(choice)]
    rows = []
    for i, tid in enumerate(ids):
        top_id, top_text, top_lp = tops[i]
        nxt = ids[i + 1] if i + 1 < len(ids) else None
        seen = entries[i + 1].get(str(nxt)) if nxt is not None else None
        word = (entries[i] or {}).get(str(tid), {}).get("decoded_token") if i else None
        rows.append(
            {
                "position": i,
                "token": word if isinstance(word, str) else backend.decode([tid]),
                "top1": top_text,
                "top1_id": top_id,
                "top1_prob": math.exp(top_lp),
                "next": seen.get("decoded_token") if seen else None,
                "next_prob": math.exp(seen["logprob"]) if seen else None,
                "next_rank": seen.get("rank") if seen else None,
                "hit": nxt is not None and top_id == nxt,
            }
        )
    return {
        "shape": [len(ids), None],
        "tokens": len(ids),
        "vocab": None,
        "rows": rows,
        "hits": sum(r["hit"] for r in rows),
        "ms": ms,
        "on": "server",
        "request": {"path": "/v1/completions", "body": body},
    }


def _prompt_top(entry: dict) -> tuple[int, str, float]:
    """The rank-1 token of one `prompt_logprobs` entry ({id: {logprob, rank, decoded_token}})."""
    best = min(entry.items(), key=lambda kv: kv[1].get("rank") or 1 << 30)
    return int(best[0]), best[1].get("decoded_token") or "", float(best[1]["logprob"])


def _answer_top(choice: dict) -> tuple[int, str, float]:
    """The last position's prediction: the greedy answer token, as its `logprobs` names it."""
    lp = choice.get("logprobs") or {}
    token = (lp.get("tokens") or [""])[0]
    tid = int(token.split(":", 1)[1]) if token.startswith("token_id:") else -1
    return tid, choice.get("text") or "", float((lp.get("token_logprobs") or [0.0])[0])


# --- step 6: where the time to first token went ----------------------------------------------------
def server_ttft_account(backend, text: str, repeats: int = 3) -> dict:
    """On a server: the lesson's prompt sent `repeats` times (a fresh cache salt each, after one
    untimed warm-up), streamed for one token, each request's client TTFT split by the server's own
    account of it (`latency/account.py`: queue + server TTFT + the rest). Where the server sends no
    per-request numbers, its `/metrics` histograms around each request (`server_time.Tally`, marked
    server-wide if anything else ran) or llama.cpp's `timings` give the mean split instead."""
    from ..backends.server import dialects, metrics
    from ..latency import account, server_time

    prompt = backend.encode(text) if backend.sends_ids else text
    fresh = lambda: dialects.uncached_fields(backend.dialect, secrets.token_hex(16))  # noqa: E731
    send(backend, prompt, 1, fresh())  # warm-up, untimed
    streams, tally = [], server_time.Tally()
    for _ in range(repeats):
        before = metrics.scrape(backend.client)
        streams.append(send(backend, prompt, 1, fresh()))
        tally.add(before, server_time.settled(backend.client, before, 1), 1)
    told = account.account(streams)
    split = None if told else tally.report([s.ttft_ms for s in streams]) or server_time.from_timings(streams)
    request = {
        "path": "/v1/completions",
        "body": {
            "model": backend.model,
            "prompt": prompt,
            "max_tokens": 1,
            "stream": True,
            "stream_options": {"include_usage": True},
            **fresh(),
        },
    }
    return {
        "on": "server",
        "prompt_tokens": streams[0].prompt_tokens,
        "client_ttft_ms": [s.ttft_ms for s in streams],
        "account": told,
        "split": split,
        "warmth": account.warmth(streams),
        "largest": _largest(told["stats"] if told else None, split),
        "request": request,
    }


def _largest(stats: dict | None, split: dict | None) -> str | None:
    """Which part took most of the TTFT (medians of the per-request account, else the mean split)."""
    if stats:
        found = {k: (stats.get(k) or {}).get("median") for k in ("queue_ms", "server_ttft_ms", "rest_ms")}
    elif split:
        server = split.get("prefill_ms", split.get("server_ttft_ms"))
        found = {"queue_ms": split.get("queue_ms"), "server_ttft_ms": server, "rest_ms": split.get("overhead_ms")}
    else:
        return None
    found = {k: v for k, v in found.items() if v is not None}
    return max(found, key=found.get) if found else None


def ttft_account(backend, text: str, repeats: int = 3) -> dict:
    """In this process there is no queue and no network: the time to first token splits into
    tokenizing the prompt, the forward over it (the prefill), and the rest (picking the first
    token and turning it into text). Each timed `repeats` times after a warm-up; medians."""
    backend.forward(backend.encode(text), backend.new_cache())  # warm-up, untimed
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ids = backend.encode(text)
        t1 = time.perf_counter()
        scores = backend.forward(ids, backend.new_cache())
        t2 = time.perf_counter()
        backend.token_text(scores.token_id(int(scores.values.argmax())))
        t3 = time.perf_counter()
        runs.append({"tokenize_ms": (t1 - t0) * 1000, "forward_ms": (t2 - t1) * 1000, "rest_ms": (t3 - t2) * 1000})
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return {
        "on": "embedded",
        "prompt_tokens": len(ids),
        "runs": runs,
        "split": {**median, "client_ttft_ms": sum(median.values())},
        "largest": "server_ttft_ms" if median["forward_ms"] >= median["tokenize_ms"] + median["rest_ms"] else "rest_ms",
    }
