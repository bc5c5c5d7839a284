"""cost/prefill.py: the two phases measured on the tiny real model, and the pure parts (the
ratio, the long answer against the long prompt, the per-position predictions) checked against a
direct computation."""

from __future__ import annotations

import torch

from tokenloop.cost import prefill


def test_lengths_span_fifteen_times():
    plan = prefill.lengths(600)
    assert plan[0] == 40 and plan[-1] == 600 and plan == sorted(set(plan))


def test_phases_time_a_prefill_and_a_decode_step_at_every_length(tiny):
    r = prefill.phases(tiny, longest=48, repeats=2)
    assert [s["n"] for s in r["series"]] == prefill.lengths(48)
    for s in r["series"]:
        assert len(s["ttft_samples_ms"]) == 2 and len(s["itl_samples_ms"]) == 2
        assert s["ttft_low_ms"] <= s["ttft_ms"] <= s["ttft_high_ms"]
    assert r["on"] == "embedded" and r["length_ratio"] == 48 / prefill.lengths(48)[0]
    assert r["effect"]["ttft"]["verdict"] in ("higher", "lower", "unclear")


def test_ratio_is_the_decode_step_over_the_prefill_slope():
    phased = {"fit": {"b_ms_per_token": 0.5}, "itl_ms": 40.0, "shortest": 10, "longest": 150, "on": "server"}
    assert prefill.ratio(phased)["ratio"] == 80.0
    flat = {**phased, "fit": {"b_ms_per_token": -0.1}}
    assert prefill.ratio(flat)["ratio"] is None  # a prefill that did not grow gives no ratio


def test_answer_result_projects_only_the_steps_not_timed():
    r = prefill.answer_result(8, 500, 30.0, [10.0, 12.0, 11.0], [100.0, 90.0, 95.0], "embedded")
    a = r["long_answer"]
    assert a["timed_steps"] == 3 and a["projected_steps"] == 496
    assert a["ms"] == 30.0 + 33.0 + 496 * 11.0
    assert r["long_prompt"]["ms"] == 95.0 and r["longer"] == "answer"


def test_answer_vs_prompt_times_both_on_the_tiny_model(tiny):
    r = prefill.answer_vs_prompt(tiny, tiny.encode("The scheduler"), tokens=40, steps=5)
    assert r["tokens"] == 40 and r["long_answer"]["timed_steps"] == 5
    assert r["long_answer"]["projected_steps"] == 40 - 1 - 5
    assert len(r["long_prompt"]["samples_ms"]) == 3


def test_positions_are_the_argmax_of_every_row_of_the_logits(tiny):
    ids = tiny.encode("The scheduler watches for new pods")
    r = prefill.positions(tiny, ids)
    logits = tiny.all_logits(ids)
    assert r["shape"] == [len(ids), tiny.vocab_size]
    assert [row["top1_id"] for row in r["rows"]] == logits.argmax(-1).tolist()
    hits = sum(int(logits[i].argmax()) == ids[i + 1] for i in range(len(ids) - 1))
    assert r["hits"] == hits and r["rows"][-1]["next"] is None
    assert abs(r["rows"][0]["top1_prob"] - float(torch.softmax(logits[0].float(), -1).max())) < 1e-5


def test_prompt_top_is_the_rank_one_token_of_an_entry():
    entry = {
        "43574": {"logprob": -15.6, "rank": 21906, "decoded_token": " scheduler"},
        "29": {"logprob": -0.87, "rank": 1, "decoded_token": "-"},
    }
    assert prefill._prompt_top(entry) == (29, "-", -0.87)
    choice = {"text": " and", "logprobs": {"tokens": ["token_id:288"], "token_logprobs": [-1.5]}}
    assert prefill._answer_top(choice) == (288, " and", -1.5)


def test_largest_part_reads_the_medians_or_else_the_mean_split():
    stats = {"queue_ms": {"median": 0.1}, "server_ttft_ms": {"median": 60.0}, "rest_ms": {"median": 25.0}}
    assert prefill._largest(stats, None) == "server_ttft_ms"
    split = {"queue_ms": 900.0, "prefill_ms": 60.0, "overhead_ms": 20.0}
    assert prefill._largest(None, split) == "queue_ms"
    assert prefill._largest(None, None) is None


def test_ttft_account_in_process_splits_tokenize_forward_and_the_rest(tiny):
    r = prefill.ttft_account(tiny, "The scheduler watches for new pods", repeats=2)
    s = r["split"]
    assert r["on"] == "embedded" and len(r["runs"]) == 2
    assert r["prompt_tokens"] == len(tiny.encode("The scheduler watches for new pods"))
    assert abs(s["client_ttft_ms"] - (s["tokenize_ms"] + s["forward_ms"] + s["rest_ms"])) < 1e-9
    assert r["largest"] in ("server_ttft_ms", "rest_ms")
