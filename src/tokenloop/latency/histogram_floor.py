"""The histogram floor: when the server's ITL percentile can't be trusted, and the client's instead.

A Prometheus histogram keeps counts per bucket, not the values. A percentile read from it (as
Grafana's `histogram_quantile` does) finds the bucket the rank falls in and draws a straight line
between its bounds, so the answer is only known to within that bucket's width. vLLM 0.32's
inter-token-latency buckets begin 10, 25, 50, 75, 100 ms (vllm/v1/metrics/buckets.py): a GPU
decoding at 6 ms a token lands every gap in the first bucket, and the server's p50, p90 and p99 all
come out as straight-line guesses between 0 and 10 ms. The rule here: where the client's own value
at a percentile is smaller than the width of the bucket the server's estimate falls in, the
server's number is a guess and the client's distribution (every gap, timed) is the one to read.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..backends.server.metrics import quantile
from ..measure.bench_stats import percentile

QUANTILES = (50, 90, 99)


def floor(buckets: list[tuple[float, float]] | None, client_gaps_ms: Sequence[float]) -> dict | None:
    """The server's ITL percentiles from its histogram's added buckets (seconds), each beside the
    bucket that bounds it and the client's own percentile of the gaps it timed; None without
    buckets or gaps."""
    if not buckets or not client_gaps_ms or buckets[-1][1] <= 0:
        return None
    rows = []
    for q in QUANTILES:
        estimate, low, high = quantile(buckets, q / 100)
        client = percentile(client_gaps_ms, q)
        width = (high - low) * 1000
        rows.append(
            {
                "q": q,
                "server_ms": estimate * 1000,
                "bucket_ms": [low * 1000, high * 1000],
                "width_ms": width,
                "client_ms": client,
                "trusted": client >= width,
            }
        )
    first = buckets[0][0] * 1000
    untrusted = [r for r in rows if not r["trusted"]]
    if untrusted:
        said = ", ".join(f"p{r['q']}" for r in untrusted)
        verdict = (
            f"the server's {said} can't be trusted: the client's gaps are shorter than the width of the "
            f"histogram bucket they fall in (the first ends at {first:g} ms); read the client's"
        )
    else:
        verdict = "each bucket is narrower than the client's gap at that percentile: the server's percentiles hold, to within a bucket"
    return {
        "observations": int(buckets[-1][1]),
        "first_bucket_ms": first,
        "rows": rows,
        "trusted": not untrusted,
        "verdict": verdict,
    }
