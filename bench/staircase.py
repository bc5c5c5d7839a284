"""The staircase's honesty report, measured in one run (issue: the hidden cost).

Per-step time of the embedded model with and without the KV cache, lengths shuffled and repeated
(`tokenloop.cost.staircase.measure`). Reported:
- uncached and cached step time at the longest length, and their ratio;
- each series' fit (intercept, slope, R²) on the per-length minima;
- the same fit on each single round alone: how far one pass would have misled;
- the noise: the spread of the repeats, as a share of each length's minimum;
- the FLOP rate each kind of step reached, against the estimate from the config.

    .venv/bin/python bench/staircase.py [--max-len 256] [--points 6] [--repeats 3] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from tokenloop.backends.embedded import EmbeddedBackend
from tokenloop.cost import staircase
from tokenloop.measure import fits


def single_round_r2(data: dict, kind: str) -> list[float]:
    """R² of a fit made from one round of the repeats only (round r = the r-th sample of each length)."""
    xs = [p["length"] for p in data["series"]]
    fit = fits.fit_uncached if kind == "uncached" else fits.fit_cached
    return [fit(xs, [p[f"{kind}_samples_ms"][r] for p in data["series"]]).r2 for r in range(data["repeats"])]


def report(data: dict) -> dict:
    last = data["series"][-1]
    out = {
        "max_len": data["max_len"],
        "threads": data["threads"],
        "wall_s": data["wall_s"],
        "uncached_ms_at_max": last["uncached_ms"],
        "cached_ms_at_max": last["cached_ms"],
        "ratio_at_max": last["uncached_ms"] / last["cached_ms"],
    }
    for kind in ("uncached", "cached"):
        fit = data["fits"][kind]
        spreads = [100 * p[f"{kind}_spread_ms"] / p[f"{kind}_ms"] for p in data["series"]]
        out[kind] = {
            "intercept_ms": fit["a_ms"],
            "slope_ms_per_token": fit["b_ms_per_token"],
            "quadratic": fit["c_ms_per_token2"],
            "r2": fit["r2"],
            "r2_single_rounds": single_round_r2(data, kind),
            "spread_pct_median": statistics.median(spreads),
            "spread_pct_max": max(spreads),
        }
    out["gflops_uncached_at_max"] = data["predicted"]["gflops_uncached_at_max"]
    out["gflops_cached_at_max"] = data["predicted"]["gflops_cached_at_max"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--points", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backend = EmbeddedBackend()
    data = staircase.measure(
        backend,
        args.max_len,
        args.points,
        args.repeats,
        threads=args.threads,
        on_progress=lambda done, total: print(f"\r  {done}/{total}", end="", file=sys.stderr),
    ).to_json()
    print(file=sys.stderr)
    r = report(data)
    if args.json:
        print(json.dumps(r))
        return 0
    print(
        f"staircase bench: {data['model']}, {r['threads']} thread(s), {data['points']} lengths up to {r['max_len']} "
        f"× {data['repeats']} repeats, {r['wall_s']:.0f} s"
    )
    print(
        f"  at n={r['max_len']}: no cache {r['uncached_ms_at_max']:.1f} ms, cache {r['cached_ms_at_max']:.1f} ms "
        f"(×{r['ratio_at_max']:.1f})"
    )
    for kind in ("uncached", "cached"):
        k = r[kind]
        singles = ", ".join(f"{v:.2f}" for v in k["r2_single_rounds"])
        quad = f" + {k['quadratic']:.3g}·n²" if k["quadratic"] is not None else ""
        print(
            f"  {kind:8}: {k['intercept_ms']:.1f} ms + {k['slope_ms_per_token']:.4f} ms/token{quad}; R² {k['r2']:.3f} "
            f"on minima (single rounds: {singles}); spread median {k['spread_pct_median']:.0f} %, max {k['spread_pct_max']:.0f} %"
        )
    print(
        f"  FLOP rate at n={r['max_len']}: no cache {r['gflops_uncached_at_max']:.1f} GFLOP/s, "
        f"cache {r['gflops_cached_at_max']:.2f} GFLOP/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
