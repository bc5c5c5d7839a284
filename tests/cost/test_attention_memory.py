"""cost/attention_memory.py: naive and fused attention give the same output, the naive one holds
the score matrix (its peak grows with n²), the fused one does not; lengths over the budget are
skipped and 8,192 tokens projected."""

from __future__ import annotations

import torch

from tokenloop.cost import attention_memory as am


def test_naive_and_fused_agree():
    q, k, v = (torch.randn(3, 50, 16) for _ in range(3))
    assert torch.allclose(am.naive(q, k, v), am.fused(q, k, v), atol=1e-5)


def test_measure_holds_the_scores_only_when_naive():
    r = am.measure(4, 32, lengths=(512, 1024), target=8192)
    small, big = r["points"]
    assert big["score_bytes"] == 4 * 1024 * 1024 * 4
    assert big["naive_peak_bytes"] >= big["score_bytes"]  # at least one whole matrix was held
    assert big["fused_peak_bytes"] < big["score_bytes"] / 4
    assert big["max_abs_diff"] < 1e-4
    p = r["projected"]
    assert not p["measured"] and p["tokens"] == 8192 and p["from"] == [512, 1024]
    assert p["naive_peak_bytes"] > big["naive_peak_bytes"] * 8  # grown by (8192/1024)^e, e near 2


def test_lengths_over_the_budget_are_skipped():
    assert am.fits(9, 4096) and not am.fits(9, 8192)
    r = am.measure(2, 8, lengths=(64, 10**6), target=128)
    assert r["skipped"] == [10**6] and [p["tokens"] for p in r["points"]] == [64]


def test_project_grows_by_the_measured_exponent():
    pts = [
        {"tokens": 1000, "naive_peak_bytes": 100, "naive_ms": 10, "fused_ms": 1, "score_bytes": 50},
        {"tokens": 2000, "naive_peak_bytes": 400, "naive_ms": 40, "fused_ms": 2, "score_bytes": 200},
    ]
    p = am.project(pts, 8000)
    assert abs(p["exponent"] - 2) < 1e-9 and abs(p["naive_peak_bytes"] - 6400) < 1e-6
    assert abs(p["fused_ms"] - 8) < 1e-9 and p["score_bytes"] == 3200
