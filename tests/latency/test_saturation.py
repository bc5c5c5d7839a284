"""Saturation explained (latency/saturation.py): the knee of a concurrency sweep and which signal
moved first, from levels written here with the numbers each test chooses; the real sweep on vLLM
with waiting requests is in tests/latency/test_trusted_numbers.py."""

from __future__ import annotations

from tokenloop.latency.saturation import knee


def level(n, tpot, waiting=0.0, running=None, kv=0.05, preemptions=0):
    split = {"waiting_peak": waiting, "running_peak": running or n, "kv_usage_peak": kv, "preemptions": preemptions}
    return {"concurrency": n, "metrics": {"median_tpot_ms": tpot}, "split": split}


def test_waiting_with_the_cache_nearly_empty_names_the_batch_cap():
    got = knee([level(1, 50), level(4, 52), level(16, 70, waiting=8, running=8)])
    assert got["level"] == 16 and got["first"] == ["queueing"]  # the TPOT rise at 16 is not the steps' speed
    assert "--max-num-seqs" in got["sentence"] and "up to 8 waiting, 8 running" in got["sentence"]


def test_a_full_cache_or_a_preemption_names_kv_pressure():
    got = knee([level(1, 50), level(8, 51, kv=0.95), level(16, 80, waiting=3, kv=1.0, preemptions=2)])
    assert (
        got["level"] == 8
        and got["first"] == ["kv"]
        and got["sentence"].endswith("then queueing at 16 at once, compute at 16 at once")
    )


def test_slower_steps_with_nobody_waiting_name_compute():
    got = knee([level(1, 50), level(2, 55), level(4, 61)])
    assert got["level"] == 4 and got["first"] == ["compute"] and "TPOT +22%" in got["sentence"]


def test_a_sweep_that_never_saturated_says_so():
    got = knee([level(1, 50), level(2, 51)])
    assert got["level"] is None and got["sentence"].startswith("no knee up to 2 at once")
    assert knee([]) is None
