"""Lesson 6 on a connected OpenAI-compatible server (vLLM first): what its logprobs can show.

A server returns the top few logprobs of each position, never the whole vocabulary, and reports
them either before its sampler (vLLM's default `--logprobs-mode raw_logprobs`) or after it
(`processed_logprobs`: after temperature, top-k and top-p). `mode` tells the two apart by asking
twice; each step then says what its numbers are:

    same_forward   T 0.2 and T 1.5, seeded: raw top-k agree (max |Δ logprob|), the draws differ
    temperature    processed mode only: the favourite's probability at T 0.5, 1, 2
    outside_top    `draws` seeded one-token requests at T 1 (one at a time, a stated plan)
    top_p_kept     processed mode only: finite entries after top_p are the eligible tokens
    alone_vs_batch 8 identical greedy requests at once against one alone (a stated plan)

The requests that send more than one at a time or in a row (steps 3 and 5) follow `load.py`'s
rules: `/health` before and after, stop at the first 5xx; the caller checks consent first
(`require_consent`). Each function returns a JSON-ready dict shaped like `embedded.py`'s.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from ..backends.server import dialects, wire
from ..backends.server.client import Refused
from ..errors import ServerError, UsageError
from ..measure.load import health, is_loopback
from ..sampling import Sampler

K = 20  # the logprobs asked for; a server's own cap lowers it (backend.complete)
MAX_DRAWS = 50
BATCH = 8


def measured_mode(server, ids: list[int]) -> str:
    """'raw' or 'processed': the favourite's logprob at T 1 against T 0.5 (the same number before
    the sampler, a sharper one after it); kept on the server's caps, as the probe keeps its own."""
    said = server.caps.distribution
    if said.startswith(("raw (measured", "processed")):
        return said.split(" ")[0].rstrip(":")
    at_one, _ = ask(server, ids, 1, 1.0, seed=0)
    at_half, _ = ask(server, ids, 1, 0.5, seed=0)
    same = by_id(server, at_half).get(server.tokens.id_of(at_one.top[0]))
    one = at_one.top[0].logprob
    if same is not None and abs(same - one) > 1e-3:
        server.caps.distribution = (
            f"processed: measured, the favourite's logprob moved from {one:.3f} at T 1 to {same:.3f} at T 0.5"
        )
    else:
        documented = said.removeprefix("raw: ")
        server.caps.distribution = f"raw (measured: the same logprob at T 1 and T 0.5): {documented}"
    return server.caps.distribution.split(" ")[0].rstrip(":")


def ask(server, ids: list[int], k: int, temperature: float, seed: int | None = None, top_p: float | None = None):
    """One one-token completion with the top-`k` logprobs: (position, the server's pick)."""
    answer = server.complete(ids, k, sampler=Sampler(temperature, top_p=top_p), seed=seed)
    return answer.position, answer.server_pick


def entry(server, e: wire.Entry) -> dict:
    token_id = server.tokens.id_of(e)
    return {"id": token_id, "token": server.token_text(token_id), "prob": math.exp(e.logprob)}


def drawn(server, position: wire.Position, pick: int | None) -> dict:
    lp = next((e.logprob for e in position.top if server.tokens.id_of(e) == pick), None)
    if lp is None and position.chosen is not None:
        lp = position.chosen.logprob
    return {
        "id": pick,
        "token": server.token_text(pick) if pick is not None else "?",
        "prob": math.exp(lp or -math.inf),
    }


def by_id(server, position: wire.Position) -> dict[int, float]:
    return {server.tokens.id_of(e): e.logprob for e in position.top}


def same_forward(server, prompt: str, temperatures=(0.2, 1.5), seed: int = 1, k: int = K) -> dict:
    """Step 1: the same prompt at each temperature, seeded; the returned logprobs compared."""
    ids = server.encode(prompt)
    kind = measured_mode(server, ids)
    runs, first = [], None
    for t in temperatures:
        position, pick = ask(server, ids, k, t, seed)
        lps = by_id(server, position)
        first = lps if first is None else first
        shared = [i for i in lps if i in first and math.isfinite(lps[i]) and math.isfinite(first[i])]
        runs.append(
            {
                "temperature": t,
                "top": [entry(server, e) for e in position.top],
                "drawn": drawn(server, position, pick),
                "max_abs_diff": max((abs(lps[i] - first[i]) for i in shared), default=0.0),
                "returned": len(position.top),
            }
        )
    note = (
        "the server reports raw logprobs (before its sampler), so they are the model's own numbers at both temperatures"
        if kind == "raw"
        else "the server reports processed logprobs (after temperature), so they differ on purpose: step 2 "
        "reads that; only raw logprobs show what the model computed"
    )
    return {
        "prompt": prompt,
        "seed": seed,
        "runs": runs,
        "max_abs_diff": max(r["max_abs_diff"] for r in runs),
        "compared": min(r["returned"] for r in runs),
        "vocab_size": None,
        "mode": kind,
        "note": note,
    }


def temperature_prob(server, prompt: str, temperatures=(0.5, 1.0, 2.0), k: int = 5) -> dict:
    """Step 2 on a processed-mode server: the T 1 favourite's probability at each temperature."""
    ids = server.encode(prompt)
    kind = measured_mode(server, ids)
    if kind != "processed":
        raise NotAnswered(
            "the server reports raw logprobs (before temperature), so it returns the same numbers at every "
            "temperature: start vLLM with --logprobs-mode processed_logprobs to read them from the server"
        )
    found = {t: ask(server, ids, k, t, seed=0)[0] for t in temperatures}
    at_one = found[1.0] if 1.0 in found else found[temperatures[0]]
    favourite = server.tokens.id_of(at_one.top[0])
    points = []
    for t in temperatures:
        lps = by_id(server, found[t])
        top = [entry(server, e) for e in found[t].top[:5]]
        points.append(
            {
                "temperature": t,
                "prob": math.exp(lps[favourite]) if favourite in lps else None,  # None: below the returned top
                "top_mass": sum(c["prob"] for c in top),
                "top": top,
            }
        )
    return {
        "prompt": prompt,
        "token": server.token_text(favourite),
        "id": favourite,
        "points": points,
        "vocab_size": None,
        "mode": kind,
        "note": "post-temperature probabilities the server reported (processed logprobs)",
    }


class NotAnswered(UsageError):
    """A step this server's logprobs cannot answer; the message says why in one line."""


def outside_plan(draws: int = MAX_DRAWS, k: int = 5) -> dict:
    draws = max(1, min(draws, MAX_DRAWS))
    return {
        "requests": draws,
        "concurrency": 1,
        "text": f"sends {draws} one-token requests at T 1, one at a time (seeds 0–{draws - 1}), each asking for the "
        f"top {k} logprobs; /health is read before and after, and the run stops at the first 5xx",
    }


def batch_plan(steps: int, batch: int = BATCH) -> dict:
    return {
        "requests": batch + 1,
        "concurrency": batch,
        "text": f"sends one greedy request of {steps} tokens alone, then {batch} identical ones at once; /health is "
        "read before and after, and the run stops at the first 5xx",
    }


def require_consent(url: str, consent: bool, remote: bool, what: str) -> None:
    """The click after the stated plan; and, for a server elsewhere, its owner's say-so."""
    if not is_loopback(url) and not remote:
        raise UsageError(
            f"{httpx.URL(url).host} is not this machine: {what} loads a real server, so it runs there only when you "
            "confirm you run it (tick 'I run this server' and start again)"
        )
    if not consent:
        raise UsageError(f"{what} sends several requests: read its plan, then press Start to consent")


def healthy_before(server) -> bool | None:
    before = health(server.client)
    if before is False:
        raise ServerError(f"{server.root}/health says the server is not healthy: nothing was sent")
    return before


def stopped_by(error: ServerError) -> str:
    if isinstance(error, Refused) and error.status >= 500:
        return f"the server answered {error.status} ({error.server_message}): stopped there"
    raise error


def outside_top(server, prompt: str, draws: int = MAX_DRAWS, k: int = 5, on_progress=None) -> dict:
    """Step 3: `draws` seeded one-token requests at T 1, counted outside the top k the server reported."""
    draws = max(1, min(draws, MAX_DRAWS))
    ids = server.encode(prompt)
    before = healthy_before(server)
    picks, probs, top, stopped = [], {}, None, None
    for seed in range(draws):
        try:
            position, pick = ask(server, ids, k, 1.0, seed)
        except ServerError as e:
            stopped = stopped_by(e)
            break
        top = top or [entry(server, e) for e in position.top[:k]]
        picks.append(pick)
        probs[pick] = drawn(server, position, pick)
        if on_progress:
            on_progress(seed + 1, draws)
    after = health(server.client)
    if not picks:
        raise ServerError(stopped or "no draw came back")
    top_ids = {c["id"] for c in top}
    outside = [p for p in picks if p not in top_ids]
    mass = sum(c["prob"] for c in top)
    rarest = min(probs.values(), key=lambda c: c["prob"])
    return {
        "prompt": prompt,
        "draws": len(picks),
        "k": k,
        "temperature": 1.0,
        "outside": len(outside),
        "outside_share": len(outside) / len(picks),
        "top_mass": mass,
        "expected_outside": 1 - mass,
        "top": top,
        "rarest": rarest,
        "seeds": f"0–{len(picks) - 1}",
        "plan": outside_plan(draws, k),
        "healthy": [before, after],
        "stopped": stopped,
    }


def top_p_kept(server, prompt: str, top_p: float = 0.5, temperature: float = 1.0, k: int = K) -> dict:
    """Step 4 on a processed-mode server: the entries left finite after top_p, renormalised."""
    ids = server.encode(prompt)
    kind = measured_mode(server, ids)
    if kind != "processed":
        raise NotAnswered(
            "the server reports raw logprobs (before top_p), so they never show which tokens top_p removed: start "
            "vLLM with --logprobs-mode processed_logprobs to count them on the server"
        )
    raw_position, _ = ask(server, ids, k, temperature, seed=0)
    kept_position, _ = ask(server, ids, k, temperature, seed=0, top_p=top_p)
    raw = by_id(server, raw_position)
    finite = [e for e in kept_position.top if math.isfinite(e.logprob)]
    kept = [{**entry(server, e), "raw": math.exp(raw.get(server.tokens.id_of(e), -math.inf))} for e in finite]
    at_least = len(finite) == len(kept_position.top)  # every returned entry kept: the count is a floor
    mass = sum(c["raw"] for c in kept)
    return {
        "prompt": prompt,
        "top_p": top_p,
        "temperature": temperature,
        "eligible": len(finite),
        "returned": len(kept_position.top),
        "at_least": at_least,
        "floor": len(finite) + (more_needed(top_p, mass, min(c["raw"] for c in kept)) if at_least and kept else 0),
        "cap": server.max_top_k,  # the server's logprobs cap, where it has one: why it returned no more
        "vocab_size": None,
        "kept": kept,
        "kept_raw_mass": mass,
        "mode": kind,
        "note": "eligible = the returned candidates whose processed probability is above zero",
    }


def more_needed(top_p: float, mass: float, smallest: float) -> int:
    """How many tokens beyond the returned ones top_p must also keep, at least: the returned ones
    hold `mass` of the probability, and no token below them has more than `smallest`, the least of
    them, so reaching `top_p` takes at least (top_p - mass) / smallest more."""
    if mass >= top_p or smallest <= 0:
        return 0
    return math.ceil((top_p - mass) / smallest - 1e-9)


def greedy(server, ids: list[int], steps: int) -> tuple[list[int], list[float]]:
    """One greedy request of `steps` tokens: its token ids and each one's logprob."""
    body = dialects.completion_body(server.dialect, server.model, ids, 1, max_tokens=steps)
    if server.dialect is dialects.VLLM:
        body["ignore_eos"] = True  # every request runs all `steps`, so the paths compare position by position
    data = server.client.call("POST", server.caps.endpoint, body)
    found = wire.positions(server.logprobs_of(data))
    choice = data["choices"][0] if isinstance(data, dict) and data.get("choices") else {}
    path = choice.get("token_ids")
    if not isinstance(path, list):
        path = [server.tokens.id_of(p.chosen) for p in found if p.chosen is not None]
    lps = [p.chosen.logprob if p.chosen is not None else math.nan for p in found]
    return list(path), lps


def alone_vs_batch(server, prompt: str, steps: int = 24, batch: int = BATCH) -> dict:
    """Step 5: the prompt greedy alone, then `batch` identical greedy requests at once."""
    ids = server.encode(prompt)
    before = healthy_before(server)
    started = time.perf_counter()
    try:
        alone = greedy(server, ids, steps)
        with ThreadPoolExecutor(batch) as pool:
            together = list(pool.map(lambda _: greedy(server, ids, steps), range(batch)))
    except ServerError as e:
        stopped = stopped_by(e)
        raise ServerError(f"{stopped}; /health after: {health(server.client)}") from None
    after = health(server.client)
    path, lps = alone
    diverge, diff = None, 0.0
    for other, other_lps in together:
        at = next((i for i, (p, q) in enumerate(zip(path, other)) if p != q), None)
        if at is not None and (diverge is None or at < diverge):
            diverge = at
        same_until = len(path) if at is None else at + 1  # the first differing position's logprob still counts
        for a, b in list(zip(lps, other_lps))[:same_until]:
            if math.isfinite(a) and math.isfinite(b):
                diff = max(diff, abs(a - b))
    texts = [server.decode(p) for p, _ in together]
    odd = next((t for (p, _), t in zip(together, texts) if p != path), texts[0])
    return {
        "prompt": prompt,
        "batch": batch,
        "steps": steps,
        "max_abs_diff": diff,
        "same_path": diverge is None,
        "first_divergence": diverge,
        "distinct": len({tuple(p) for p, _ in together} | {tuple(path)}),
        "alone_text": server.decode(path),
        "batched_text": odd,
        "ms": (time.perf_counter() - started) * 1000,
        "plan": batch_plan(steps, batch),
        "healthy": [before, after],
        "note": "max_abs_diff compares the chosen tokens' logprobs, the only numbers a server returns per step",
    }
