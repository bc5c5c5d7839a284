"""Lesson 6 on a server (draws/server.py), against the real vLLM CPU build: each figure checked
against a direct /v1/completions call this test makes itself (support/vllm_direct.py, not tokenloop's backend)."""

from __future__ import annotations

import math

import pytest
from support.vllm_direct import completion

from tokenloop.backends.server import ServerBackend
from tokenloop.draws import server as served
from tokenloop.errors import UsageError

PROMPT = "Kubernetes pods are scheduled by the"


def direct(url: str, backend: ServerBackend, k: int, **fields) -> dict:
    """One /v1/completions answer, asked here: the prompt as ids, the top-k logprobs keyed by id."""
    return completion(url, backend.model, PROMPT, logprobs=k, **fields)


def test_consent_is_needed_and_a_remote_server_needs_its_owners_say_so():
    with pytest.raises(UsageError, match="Start to consent"):
        served.require_consent("http://127.0.0.1:8000", consent=False, remote=False, what="step 3")
    with pytest.raises(UsageError, match="I run this server"):
        served.require_consent("http://gpu.example.com:8000", consent=True, remote=False, what="step 3")
    served.require_consent("http://gpu.example.com:8000", consent=True, remote=True, what="step 3")
    assert served.outside_plan(500)["requests"] == served.MAX_DRAWS  # bounded whatever is asked


def test_a_capped_count_is_raised_by_the_mass_the_returned_tokens_hold():
    # five returned, holding 44.3%, the least 2.19%: no other token has more, so 0.5 needs 3 more
    assert served.more_needed(0.5, 0.443, 0.0219) == 3
    assert served.more_needed(0.5, 0.44, 0.02) == 3  # exactly three fill it
    assert served.more_needed(0.5, 0.6, 0.1) == 0 and served.more_needed(0.5, 0.3, 0.0) == 0


@pytest.fixture(scope="module")
def raw(vllm_url):
    return ServerBackend(vllm_url, log=lambda message: None)


@pytest.fixture(scope="module")
def processed(vllm_processed_url):
    return ServerBackend(vllm_processed_url, log=lambda message: None)


def test_raw_logprobs_agree_at_both_temperatures_and_the_draws_are_the_servers(raw, vllm_url):
    r = served.same_forward(raw, PROMPT)
    assert r["mode"] == "raw" and r["compared"] == 20
    assert r["max_abs_diff"] < 1e-3  # the model's own numbers, whatever the temperature
    for run in r["runs"]:
        asked = direct(vllm_url, raw, 20, temperature=run["temperature"], seed=1)
        assert run["drawn"]["id"] == asked["pick"]  # seeded: the server draws the same again
        for c in run["top"][:5]:
            assert abs(math.log(c["prob"]) - asked["top"][c["id"]]) < 1e-3


def test_a_raw_server_cannot_answer_steps_two_and_four(raw):
    with pytest.raises(served.NotAnswered, match="raw logprobs"):
        served.temperature_prob(raw, PROMPT)
    with pytest.raises(served.NotAnswered, match="processed_logprobs"):
        served.top_p_kept(raw, PROMPT)


def test_processed_logprobs_follow_temperature(processed, vllm_processed_url):
    r = served.temperature_prob(processed, PROMPT)
    assert r["mode"] == "processed"
    probs = {p["temperature"]: p["prob"] for p in r["points"]}
    assert probs[0.5] > probs[1.0] > probs[2.0]
    for t, p in probs.items():
        asked = direct(vllm_processed_url, processed, 5, temperature=t, seed=0)
        assert abs(p - math.exp(asked["top"][r["id"]])) < 1e-3
    same = served.same_forward(processed, PROMPT)  # step 1 in processed mode: they differ, said so
    assert same["mode"] == "processed" and same["max_abs_diff"] > 0.1 and "processed" in same["note"]


def test_top_p_keeps_the_finite_entries_renormalised(processed, vllm_processed_url):
    r = served.top_p_kept(processed, PROMPT)
    asked = direct(vllm_processed_url, processed, 5, temperature=1.0, top_p=0.5, seed=0)
    finite = {i: lp for i, lp in asked["top"].items() if lp > -9999}
    assert r["eligible"] == len(finite) >= 1 and r["floor"] >= r["eligible"] and r["cap"] == 5
    assert abs(sum(c["prob"] for c in r["kept"]) - 1) < 1e-3 if not r["at_least"] else True
    for c in r["kept"]:
        assert abs(math.log(c["prob"]) - finite[c["id"]]) < 1e-3 and c["prob"] >= c["raw"]


def test_seeded_draws_are_counted_outside_the_servers_top_five(raw, vllm_url):
    r = served.outside_top(raw, PROMPT, draws=10)
    top = sorted(direct(vllm_url, raw, 5, temperature=1.0)["top"].items(), key=lambda kv: -kv[1])
    top_ids = {i for i, _ in top}
    picks = [direct(vllm_url, raw, 1, temperature=1.0, seed=s)["pick"] for s in range(10)]
    assert r["outside"] == sum(p not in top_ids for p in picks)
    # Two calls of the same prompt need not agree to the last digit on a server (a prefix-cache hit
    # or another batch takes another kernel path: the lesson's step 5), so the mass is compared at 1%.
    assert abs(r["top_mass"] - sum(math.exp(lp) for _, lp in top)) < 0.01
    assert r["healthy"] == [True, True] and r["stopped"] is None


def test_eight_identical_greedy_requests_against_one_alone(raw, vllm_url):
    r = served.alone_vs_batch(raw, PROMPT, steps=8)
    alone = completion(vllm_url, raw.model, PROMPT, max_tokens=8, temperature=0, ignore_eos=True)["text"]
    assert r["alone_text"] == alone and r["batch"] == 8 and 1 <= r["distinct"] <= 9
    assert r["same_path"] == (r["first_divergence"] is None) and r["healthy"] == [True, True]
