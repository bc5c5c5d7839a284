"""Is an effect bigger than the run-to-run noise? One rule, used by every timed reveal.

A busy machine makes the same step take 40 ms on one run and 70 ms on the next, so a single
difference between two timings says nothing by itself. Each condition is run several times; its
runs give a range (fastest to slowest) and a median. The rule:

- the effect is **clear** only when the two ranges do not overlap: every run of one condition was
  slower than every run of the other (with 3 runs each, chance alone does that 1 time in 10);
- otherwise, or with fewer than 2 runs on a side (one run shows no spread at all), the verdict is
  **unclear**: the page says it can't tell on this machine now, and grades no guess against it.

The size of the effect is the ratio of the medians (the median shrugs off one disturbed run).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

MIN_RUNS = 2


def spread(runs: Sequence[float]) -> dict:
    """The median of some repeated timings and their range."""
    return {"median": statistics.median(runs), "low": min(runs), "high": max(runs), "runs": len(runs)}


def effect(before: Sequence[float], after: Sequence[float]) -> dict:
    """Did `after` come out higher or lower than `before`, beyond the spread of their repeats?
    `verdict` is "higher", "lower" or "unclear"; `change` the medians' ratio minus 1."""
    a, b = spread(before), spread(after)
    if min(a["runs"], b["runs"]) < MIN_RUNS:
        verdict, why = "unclear", "one run per side shows no spread"
    elif b["low"] > a["high"]:
        verdict, why = "higher", "every run after was above every run before"
    elif b["high"] < a["low"]:
        verdict, why = "lower", "every run after was below every run before"
    else:
        verdict, why = "unclear", "the two ranges of repeats overlap"
    return {"verdict": verdict, "why": why, "change": b["median"] / a["median"] - 1, "before": a, "after": b}
