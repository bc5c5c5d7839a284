"""Saturation explained: where a concurrency sweep stops getting tokens for free, and which signal
moved first.

While a level runs, `server_time.Watch` reads the server's gauges four times a second:
`num_requests_running`, `num_requests_waiting`, `kv_cache_usage_perc`, and the preemptions
counter's delta over the level. Three things can end "more users, nearly the same speed each":

- queueing: requests wait while others run. With the KV cache far from full, the batch cap did it
  (vLLM's `--max-num-seqs`, which `/metrics` does not publish: the running gauge plateaus at it);
- KV pressure: the cache is nearly full, or the engine preempted a request to make room;
- compute: nobody waits and the cache has room, yet each user's time per token (TPOT) has grown,
  since every step now does more work than the chip hides.

The knee is the first level where one of these shows; the sentence names the signal that moved
first (at the lowest level) and the numbers behind it.
"""

from __future__ import annotations

KV_FULL = 0.9  # KV-cache use at or above which the cache is the pressure
TPOT_RISE = 0.2  # each user's TPOT this much above the first level's: compute has become the limit

CAUSES = {
    "queueing": "requests waited to be scheduled while the KV cache had room: the batch cap "
    "(vLLM's --max-num-seqs) was reached",
    "kv": "the KV cache filled (or the engine preempted requests to make room)",
    "compute": "nobody waited and the cache had room, yet each user's time per token grew: the steps "
    "themselves got slower",
}


def signals(level: dict, base_tpot: float | None) -> dict:
    """Which of the three signals show at one level, with the numbers behind them."""
    split, m = level.get("split") or {}, level["metrics"]
    waiting, kv = split.get("waiting_peak") or 0.0, split.get("kv_usage_peak")
    preempted = split.get("preemptions") or 0
    tpot = m.get("median_tpot_ms")
    rise = tpot / base_tpot - 1 if tpot and base_tpot else None
    return {
        "queueing": waiting > 0,
        "kv": (kv is not None and kv >= KV_FULL) or preempted > 0,
        "compute": rise is not None and rise >= TPOT_RISE,
        "waiting_peak": waiting,
        "running_peak": split.get("running_peak"),
        "kv_usage_peak": kv,
        "preemptions": preempted,
        "tpot_rise": rise,
    }


def knee(levels: list[dict]) -> dict | None:
    """The first level where a signal shows, which moved first, and one sentence; None when the
    sweep has no levels. A sweep that never saturated says so."""
    if not levels:
        return None
    base = levels[0]["metrics"].get("median_tpot_ms")
    seen = [(_number(lv), signals(lv, base)) for lv in levels]
    words = {_number(lv): _label(lv) for lv in levels}
    first: dict[str, float] = {}
    for level, s in seen:
        for cause in CAUSES:
            if s[cause] and cause not in first:
                first[cause] = level
    if not first:
        top = seen[-1]
        return {
            "level": None,
            "first": None,
            "signals": {str(level): s for level, s in seen},
            "sentence": f"no knee up to {words[top[0]]}: nobody waited, the KV cache peaked at "
            f"{_share(top[1]['kv_usage_peak'])} and each user's TPOT stayed within {TPOT_RISE:.0%} of one user's",
        }
    at = min(first.values())
    moved = [c for c in CAUSES if first.get(c) == at]
    if "queueing" in moved and "compute" in moved:
        moved.remove("compute")  # a waiting request's TPOT is not the steps' speed
    s = dict(seen)[at]
    numbers = (
        f"up to {s['waiting_peak']:g} waiting, {s['running_peak'] or 0:g} running, KV cache at most "
        f"{_share(s['kv_usage_peak'])}, {s['preemptions']} preempted, TPOT "
        f"{'+' if (s['tpot_rise'] or 0) >= 0 else ''}{100 * (s['tpot_rise'] or 0):.0f}% on one user's"
    )
    later = [f"{c} at {words[first[c]]}" for c in CAUSES if c in first and first[c] > at]
    then = f"; then {', '.join(later)}" if later else ""
    sentence = f"the knee is at {words[at]}: {' and '.join(CAUSES[c] for c in moved)} ({numbers}){then}"
    return {"level": at, "first": moved, "signals": {str(level): s for level, s in seen}, "sentence": sentence}


def _number(level: dict) -> float:
    """Where a level sits on the sweep: its rate (arrivals a second) or its concurrency."""
    return level["concurrency"] if level.get("rate") is None else level["rate"]


def _label(level: dict) -> str:
    """'4 at once' (a closed loop) or '2 a second' (arrivals at a rate)."""
    return f"{level['concurrency']} at once" if level.get("rate") is None else f"{level['rate']:g} a second"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"
