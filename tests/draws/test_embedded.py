"""Lesson 6's measurements on the tiny real model: checked against sampling.py's functions called
here, not against constants."""

from __future__ import annotations

import torch

from tokenloop import sampling
from tokenloop.draws import embedded as draws
from tokenloop.sampling import Sampler

PROMPT = "the cat sat on the"


def test_temperature_never_reaches_the_forward_pass(tiny):
    r = draws.same_forward(tiny, PROMPT)
    assert r["max_abs_diff"] == 0
    assert [c["prob"] for c in r["runs"][0]["top"]] == [c["prob"] for c in r["runs"][1]["top"]]
    x = draws.logits(tiny, PROMPT)
    for run in r["runs"]:  # each run's draw is the seeded pick from these logits at its temperature
        assert run["drawn"]["id"] == sampling.pick(x, Sampler(run["temperature"]), sampling.make_generator(1))[0]


def test_temperature_prob_is_softmax_of_logits_over_t(tiny):
    r = draws.temperature_prob(tiny, PROMPT)
    x = draws.logits(tiny, PROMPT)
    for p in r["points"]:
        assert abs(p["prob"] - float(torch.softmax(x / p["temperature"], -1)[r["id"]])) < 1e-6
    probs = [p["prob"] for p in r["points"]]
    assert probs == sorted(probs, reverse=True)  # the favourite loses as T rises


def test_outside_top_counts_the_seeded_draws(tiny):
    r = draws.outside_top(tiny, PROMPT, draws=20, k=3)
    x = draws.logits(tiny, PROMPT)
    top = set(sampling.top_indices(torch.softmax(x, -1), 3))
    picks = [sampling.pick(x, Sampler(1.0), sampling.make_generator(s))[0] for s in range(20)]
    assert r["outside"] == sum(p not in top for p in picks)
    assert abs(r["expected_outside"] + r["top_mass"] - 1) < 1e-6


def test_top_p_keeps_the_smallest_set_reaching_p_renormalised(tiny):
    r = draws.top_p_kept(tiny, PROMPT, top_p=0.5)
    x = draws.logits(tiny, PROMPT)
    raw = torch.softmax(x, -1).sort(descending=True).values
    smallest = int((raw.cumsum(-1) - raw < 0.5).sum())  # tokens until the mass before one reaches p
    assert r["eligible"] == smallest and len(r["kept"]) == min(smallest, 20)
    assert r["kept_raw_mass"] >= 0.5 - 1e-6
    for c in r["kept"]:
        assert abs(c["prob"] - c["raw"] / r["kept_raw_mass"]) < 1e-4


def test_alone_vs_batch_compares_one_row_with_itself_alone(tiny):
    r = draws.alone_vs_batch(tiny, PROMPT, ["a", "the dog ran to the big red"], steps=3)
    assert r["batch"] == 3 and r["steps"] == 3
    assert r["max_abs_diff"] < 1e-3  # padding is masked: only the rounding may differ
    assert r["same_path"] == (r["first_divergence"] is None)
    alone = draws.alone_vs_batch(tiny, PROMPT, [], steps=3)
    assert alone["max_abs_diff"] == 0 and alone["same_path"]
