"""Each request's TTFT by the server's own account (latency/account.py): vLLM's per-request
`metrics` and llama.cpp's `timings` joined to the client's clock, the percentiles of each part,
and how warm the run was; and their terminal view (commands/latency/account.py), checked on a
Console(file=StringIO()). Every record here is written from numbers the test chooses; the real
vLLM's are checked in tests/latency/test_trusted_numbers.py."""

from __future__ import annotations

from io import StringIO

import pytest
from rich.console import Console

from tokenloop.commands.latency.account import show_account, show_warmth, waterfall
from tokenloop.latency import account
from tokenloop.measure.streamed import Chunk, Stream


def stream(ttft=100.0, gap=50.0, tokens=3, metrics=None, timings=None, prompt=200, cached=None, cold=False) -> Stream:
    usage = {"prompt_tokens": prompt, "completion_tokens": tokens}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    chunks = [Chunk(ttft + k * gap, 1, True) for k in range(tokens)]
    return Stream(tokens, "p", chunks=chunks, usage=usage, metrics=metrics, server=timings, cold=cold)


def vllm(queue=2.0, server=80.0, itl=49.0) -> dict:
    """vLLM 0.32's per-request metrics, as its last usage chunk carries them."""
    return {"time_to_first_token_ms": server, "queue_time_ms": queue, "mean_itl_ms": itl, "generation_time_ms": 98.0}


def test_vllms_own_numbers_split_the_clients_ttft_into_queue_server_ttft_and_the_rest():
    got = account.parts(stream(ttft=100.0, metrics=vllm(queue=2.0, server=80.0)))
    assert got["source"] == "vLLM per-request metrics"
    assert (got["client_ttft_ms"], got["queue_ms"], got["server_ttft_ms"]) == (100.0, 2.0, 80.0)
    assert got["rest_ms"] == pytest.approx(18.0)  # what neither the queue nor the prefill explains
    assert got["queue_ms"] + got["server_ttft_ms"] + got["rest_ms"] == pytest.approx(got["client_ttft_ms"])
    assert (got["client_itl_ms"], got["server_itl_ms"]) == (50.0, 49.0)


def test_llama_cpp_timings_give_the_prefill_with_no_queue_and_no_numbers_give_nothing():
    got = account.parts(stream(ttft=60.0, timings={"prompt_ms": 45.0, "predicted_per_token_ms": 13.0, "cache_n": 7}))
    assert got["source"] == "llama.cpp timings" and got["queue_ms"] is None and got["rest_ms"] == pytest.approx(15.0)
    assert got["cached_tokens"] == 7
    assert account.parts(stream()) is None
    assert account.account([stream(), stream()]) is None


def test_the_account_gives_each_parts_percentiles_over_the_requests_that_carried_numbers():
    runs = [stream(ttft=100.0 + k, metrics=vllm(queue=k, server=80.0)) for k in range(11)] + [stream()]
    got = account.account(runs)
    assert (got["requests"], got["of"], got["rest_negative"]) == (11, 12, 0)
    assert got["stats"]["queue_ms"]["median"] == 5.0 and got["stats"]["queue_ms"]["p90"] == pytest.approx(9.0)
    assert got["stats"]["rest_ms"]["mean"] == pytest.approx(20.0)  # 100 + k - k - 80 each
    assert len(got["per_request"]) == 11


def test_a_run_served_mostly_from_the_prefix_cache_says_so_first():
    warm = [stream(prompt=200, cached=174) for _ in range(4)]
    said = account.warmth(warm, {"prefix_cache_queries": 800, "prefix_cache_hits": 696})
    assert said["headline"] == "you measured the prefix cache: 87% of prompt tokens were cached"
    assert (said["mode"], said["cached_tokens"], said["counter_hits"]) == ("warm", 696, 696)
    out = StringIO()
    show_warmth(Console(file=out, width=120), said)
    assert out.getvalue().splitlines()[0] == "you measured the prefix cache: 87% of prompt tokens were cached"


def test_a_cold_run_says_it_was_cold_and_a_quiet_warm_one_says_how_warm():
    cold = account.warmth([stream(cached=0, cold=True) for _ in range(3)])
    assert (
        cold["mode"] == "cold"
        and cold["headline"] == "cold: every request carried a fresh cache salt, 0 of 600 prompt tokens cached"
    )
    warm = account.warmth([stream(cached=20)])
    assert warm["headline"] == "warm allowed: 10% of prompt tokens were cached"
    unknown = account.warmth([stream()])
    assert unknown["cached_share"] is None and "did not say" in unknown["headline"]


def test_the_waterfall_lays_the_parts_end_to_end_under_the_clients_bar():
    got = account.account([stream(ttft=100.0, metrics=vllm(queue=10.0, server=60.0))])
    lines = waterfall(got["stats"])
    bars = [line.split("|")[1] for line in lines]
    assert len(bars[0]) == 40  # the client's TTFT: the whole width
    assert bars[1] == "▒" * 4 and bars[2] == " " * 4 + "▒" * 24 and bars[3] == " " * 28 + "▒" * 12
    out = StringIO()
    show_account(Console(file=out, width=160), got)
    text = out.getvalue()
    assert "vLLM per-request metrics, 1 of 1 requests" in text and "the rest: HTTP" in text
    out = StringIO()
    show_account(Console(file=out, width=160), None)
    assert "--enable-per-request-metrics" in out.getvalue()
