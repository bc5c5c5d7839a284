"""Arrivals at a rate (`measure/load.py`'s open loop, `latency --rate`): when each request is sent,
checked as pure arithmetic, and on the real llama-server that the requests go out at their arrival
times whatever the server's pace, not one after another.

Modules (src/tokenloop/): measure/load.py, latency/concurrency.py (rate plans)."""

from __future__ import annotations

import json
import statistics
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO

import pytest

from tokenloop.backends.server import Client
from tokenloop.cli import main
from tokenloop.errors import UsageError
from tokenloop.latency import concurrency, saturation
from tokenloop.latency.budget import model_name
from tokenloop.measure.load import Plan, Request, arrival_offsets, run


def test_constant_arrivals_are_evenly_spaced():
    assert arrival_offsets(5, 4.0, "constant") == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_poisson_arrivals_have_the_rates_mean_gap_and_a_seed_repeats_them():
    times = arrival_offsets(4000, 5.0, "poisson", seed=3)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert times[0] == 0.0 and all(g > 0 for g in gaps)
    assert statistics.mean(gaps) == pytest.approx(1 / 5.0, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(1 / 5.0, rel=0.1)  # exponential: the sd equals the mean
    assert arrival_offsets(20, 5.0, "poisson", seed=3) == times[:20]
    assert arrival_offsets(20, 5.0, "poisson", seed=4) != times[:20]


@pytest.mark.parametrize(
    ("rate", "arrivals", "words"),
    [(0.0, "poisson", "above 0"), (2000.0, "poisson", "at most 1000"), (1.0, "bursty", "poisson or constant")],
)
def test_a_plan_refuses_a_rate_or_arrivals_it_cannot_send(rate, arrivals, words):
    with pytest.raises(UsageError, match=words):
        Plan("http://127.0.0.1:8000", [Request("x", 4)], 2, rate=rate, arrivals=arrivals)


def test_rate_plans_send_ten_seconds_of_arrivals_and_say_so():
    plans = concurrency.rate_plans("http://127.0.0.1:8000", concurrency.parse_rates("2,0.5"), None, 8, "p", 60)
    assert [(p.rate, len(p.requests)) for p in plans] == [(0.5, 5), (2.0, 20)]
    assert "arriving at 2 a second (poisson, seed 0), at most 20 in flight" in plans[1].describe()
    assert len({r.prompt for p in plans for r in p.requests}) == 25  # every prompt new: no shared prefix cache hit


def test_the_knee_of_a_rate_sweep_is_named_in_requests_a_second():
    def level(rate, tpot, waiting=0.0):
        split = {"waiting_peak": waiting, "running_peak": 1.0, "kv_usage_peak": 0.1, "preemptions": 0}
        return {"concurrency": 64, "rate": rate, "metrics": {"median_tpot_ms": tpot}, "split": split}

    got = saturation.knee([level(1, 50), level(4, 51), level(16, 53, waiting=5)])
    assert got["level"] == 16 and got["sentence"].startswith("the knee is at 16 a second: requests waited")


def test_requests_go_out_at_their_arrival_times_not_one_after_another(llama_url):
    """An open loop: 6 requests arriving 0.1 s apart, each taking longer than that on this server,
    are sent on the schedule, so several are in flight at once (a closed loop of one would send
    each only after the last one ended). 64 tokens each (ignore_eos): 12 once took 0.09 s on an
    idle Xeon, under the gap."""
    client = Client(llama_url.removesuffix("/v1"), timeout=60)
    try:
        plan = Plan(
            llama_url, [Request(f"{i}. Tell me about pods", 64) for i in range(6)], 6, rate=10.0, arrivals="constant"
        )
        result = run(client, model_name(client), plan)
    finally:
        client.close()
    assert len(result.streams) == 6 and result.stopped is None
    sent = sorted(s.sent_s for s in result.streams)
    for got, due in zip(sent, arrival_offsets(6, 10.0, "constant")):
        assert got == pytest.approx(due, abs=0.08)  # on schedule, whatever the server's pace
    ends = sorted(s.sent_s + s.chunks[-1].ms / 1000 for s in result.streams)
    assert ends[0] > sent[1]  # the second was sent before the first had finished


def test_latency_rate_runs_each_rate_and_prints_it_in_requests_a_second(llama_url, tmp_path):
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(
            ["latency", "--url", llama_url, "--max-tokens", "4", "--points", "2", "--repeats", "2",
             "--rate", "2,8", "--requests", "3", "--arrivals", "constant", "--plot", str(tmp_path / "r.png"), "--json"]
        )  # fmt: skip
    assert code == 0, err.getvalue()
    assert "arriving at 8 a second (constant), at most 3 in flight" in err.getvalue()  # the plan, stated first
    sweep = json.loads(out.getvalue())["concurrency"]
    assert [(lv["rate"], lv["arrivals"], lv["metrics"]["completed"]) for lv in sweep["levels"]] == [
        (2.0, "constant", 3),
        (8.0, "constant", 3),
    ]
    assert sweep["knee"]["sentence"].startswith(("the knee is at", "no knee up to 8 a second"))
    assert open(sweep["plot"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
