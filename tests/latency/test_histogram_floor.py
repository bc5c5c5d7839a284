"""The histogram floor (latency/histogram_floor.py): the server's ITL percentiles read from its
histogram's buckets, and when the client's own gaps are shorter than the bucket that holds the
estimate, so the server's number is a straight-line guess inside that bucket. The quantile itself
is backends/server/metrics.py's `quantile` (Prometheus' histogram_quantile)."""

from __future__ import annotations

import pytest

from tokenloop.backends.server.metrics import parse, quantile
from tokenloop.latency.histogram_floor import floor

BOUNDS = (0.01, 0.025, 0.05, 0.075, 0.1, float("inf"))  # vLLM 0.32's first ITL buckets, seconds


def cumulative(counts: list[int]) -> list[tuple[float, float]]:
    total, out = 0, []
    for bound, n in zip(BOUNDS, counts):
        total += n
        out.append((bound, float(total)))
    return out


def test_quantile_interpolates_inside_the_bucket_and_gives_its_bounds():
    buckets = cumulative([0, 0, 10, 10, 0, 0])  # 10 in 25-50 ms, 10 in 50-75 ms
    assert quantile(buckets, 0.5) == pytest.approx((0.05, 0.025, 0.05))
    assert quantile(buckets, 0.75) == pytest.approx((0.0625, 0.05, 0.075))
    assert quantile(cumulative([0] * 6), 0.5) is None


def test_gaps_below_the_first_buckets_width_make_the_servers_percentiles_untrustworthy():
    gaps = [6.0 + 0.01 * k for k in range(100)]  # a GPU's 6 ms decode: every gap in the 0-10 ms bucket
    got = floor(cumulative([100, 0, 0, 0, 0, 0]), gaps)
    assert not got["trusted"] and got["first_bucket_ms"] == 10
    p50 = got["rows"][0]
    assert p50["bucket_ms"] == [0.0, 10.0] and p50["server_ms"] == pytest.approx(5.0)  # a guess: halfway
    assert p50["client_ms"] == pytest.approx(6.495) and not p50["trusted"]
    assert got["verdict"].startswith("the server's p50, p90, p99 can't be trusted")


def test_gaps_wider_than_their_bucket_leave_the_servers_percentiles_standing():
    gaps = [58.0] * 50 + [62.0] * 50
    got = floor(cumulative([0, 0, 0, 100, 0, 0]), gaps)
    assert got["trusted"] and all(r["bucket_ms"] == pytest.approx([50.0, 75.0]) for r in got["rows"])
    assert floor(None, gaps) is None and floor(cumulative([0, 0, 0, 100, 0, 0]), []) is None


def test_buckets_are_read_from_the_exposition_text_and_their_delta_taken():
    def text(counts):
        rows = cumulative(counts)
        lines = [f'vllm:inter_token_latency_seconds_bucket{{engine="0",le="{b}"}} {n}' for b, n in rows]
        return "\n".join(s.replace('le="inf"', 'le="+Inf"') for s in lines) + "\n"

    before, after = parse(text([1, 2, 0, 0, 0, 0])), parse(text([1, 2, 5, 0, 0, 0]))
    assert after.buckets("itl")[-1] == (float("inf"), 8.0)
    assert after.buckets_delta(before, "itl") == cumulative([0, 0, 5, 0, 0, 0])
