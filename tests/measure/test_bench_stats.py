"""The latency statistics under vLLM bench's names and definitions, against numpy and hand sums."""

import math

import numpy as np
import pytest

from tokenloop.errors import UsageError
from tokenloop.measure.bench_stats import bench, parse_goodput, per_request, percentile, summary

# Two requests as their tokens arrived (ms after each was sent).
A = [100.0, 150.0, 210.0, 260.0]  # 4 tokens: TTFT 100, gaps 50 60 50, E2EL 260, TPOT 160/3
B = [80.0, 180.0]  # 2 tokens: TTFT 80, gap 100, E2EL 180, TPOT 100


@pytest.mark.parametrize("q", [0, 10, 50, 90, 99, 100])
def test_percentiles_interpolate_as_numpy_does(q):
    values = [3.0, 1.0, 7.5, 2.0, 10.0, 4.0, 4.0]
    assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_summary_has_vllm_keys_and_numpy_values():
    values = [50.0, 60.0, 50.0, 100.0]
    s = summary("itl", values)
    assert set(s) == {"mean_itl_ms", "median_itl_ms", "std_itl_ms", "p90_itl_ms", "p99_itl_ms"}
    assert s["mean_itl_ms"] == pytest.approx(np.mean(values)) and s["std_itl_ms"] == pytest.approx(np.std(values))
    assert s["p99_itl_ms"] == pytest.approx(np.percentile(values, 99))
    assert all(v is None for v in summary("ttft", []).values())


def test_one_request_by_the_definitions():
    r = per_request(A)
    assert (r["ttft"], r["e2el"], r["itl"]) == (100.0, 260.0, [50.0, 60.0, 50.0])
    assert r["tpot"] == pytest.approx(160 / 3)
    assert per_request([42.0])["tpot"] is None  # one token has no time per output token


def test_bench_pools_itl_and_averages_tpot_per_request():
    out = bench([A, B], duration_s=0.5)
    assert out["completed"] == 2 and out["total_output_tokens"] == 6
    assert out["request_throughput"] == pytest.approx(4.0) and out["output_throughput"] == pytest.approx(12.0)
    assert out["mean_ttft_ms"] == pytest.approx(90.0) and out["median_e2el_ms"] == pytest.approx(220.0)
    assert out["mean_itl_ms"] == pytest.approx(np.mean([50, 60, 50, 100]))  # pooled gaps, not per request
    assert out["mean_tpot_ms"] == pytest.approx(np.mean([160 / 3, 100]))  # per request, then averaged
    assert "request_goodput" not in out


def test_goodput_counts_requests_that_meet_every_objective():
    out = bench([A, B], duration_s=0.5, slos=parse_goodput("ttft:90,tpot:70"))
    assert out["goodput_share"] == 0.0  # A misses TTFT, B misses TPOT
    out = bench([A, B], duration_s=0.5, slos=parse_goodput("ttft:100,tpot:60"))
    assert out["goodput_share"] == 0.5 and out["request_goodput"] == pytest.approx(2.0)  # A alone, in 0.5 s
    assert out["goodput_slos_ms"] == {"ttft": 100.0, "tpot": 60.0}


@pytest.mark.parametrize(
    "text, words",
    [("itl:5", "not one of"), ("ttft:fast", "needs milliseconds"), ("ttft:0", "above 0"), ("ttft:inf", "above 0")],
)
def test_bad_goodput_is_one_line(text, words):
    with pytest.raises(UsageError, match=words):
        parse_goodput(text)
    assert parse_goodput(None) == {} and parse_goodput("e2el:1e3") == {"e2el": 1000.0}
    assert not math.isnan(parse_goodput("ttft:1")["ttft"])
