"""The staircase on a connected server (server_staircase.py): measured on the real vLLM of the
test suite, whose prefix cache is on, and its pure parts alone.

Modules (src/tokenloop/): commands/staircase.py (its --url mode), cost/server_staircase.py."""

from __future__ import annotations

import json

import pytest
from support.cli_runner import cli, one_line_error

from tokenloop.backends.server import ServerBackend, dialects, metrics
from tokenloop.cost import server_staircase
from tokenloop.errors import UsageError


def test_each_kind_of_server_gets_its_own_way_of_skipping_the_cache():
    assert dialects.uncached_fields(dialects.VLLM, "s1") == {"cache_salt": "s1"}
    assert dialects.uncached_fields(dialects.LLAMA_CPP, "s1") == {"cache_prompt": False}
    assert dialects.uncached_fields(dialects.OLLAMA, "s1") == {}  # only a new prompt makes sure


def test_the_summary_keeps_each_lengths_least_disturbed_run():
    found = [
        server_staircase.Point(64, 90.0, 30.0, [30.0, 30.0]),
        server_staircase.Point(128, 150.0, 31.0, [31.0]),
        server_staircase.Point(64, 70.0, 35.0, [35.0]),
        server_staircase.Point(128, 160.0, None, []),
    ]
    series = server_staircase.summary([128, 64], found)
    assert [p["n"] for p in series] == [64, 128]
    assert series[0]["fresh_ms"] == 70.0 and series[0]["fresh_spread_ms"] == 20.0
    assert series[0]["itl_ms"] == 30.0 and series[0]["itl_spread_ms"] == 5.0
    assert series[1]["itl_samples_ms"] == [31.0]  # a request with one token has no gap to count


@pytest.fixture(scope="module")
def vllm(vllm_url):
    backend = ServerBackend(vllm_url, log=lambda message: None)
    yield backend
    backend.close()


def test_a_length_over_the_servers_context_is_refused_with_the_length_to_use(vllm):
    with pytest.raises(UsageError, match=r"--max-len 2045 or less"):
        server_staircase.measure(vllm, max_len=4000, points=3, gaps=2)


def test_prompts_are_exactly_n_tokens_and_never_the_same_twice(vllm):
    prompts = server_staircase.Prompts(vllm)
    a, b = prompts.ids(200), prompts.ids(200)
    assert len(a) == len(b) == 200 and a != b
    assert a[:4] != b[:4]  # they differ in their first block, so no cached block can match


def test_on_vllm_fresh_time_climbs_with_n_while_the_cached_step_stays_flat(vllm):
    result = server_staircase.measure(vllm, max_len=600, points=3, repeats=2, gaps=6)
    assert result["engine"] == f"vLLM {vllm.caps.version}" and result["model"] == vllm.model
    series = result["series"]
    assert [p["n"] for p in series] == [200, 400, 600]
    assert [p["prompt_tokens"] for p in series] == [200, 400, 600]  # the server counted exactly n
    fresh = [p["fresh_ms"] for p in series]
    assert fresh[0] < fresh[1] < fresh[2] and fresh[2] > 2 * fresh[0]  # reading 3x the tokens from scratch
    itl = [p["itl_ms"] for p in series]
    assert max(itl) < 2 * min(itl)  # one new token a step, whatever the context (a shared machine is noisy)
    assert max(itl) < fresh[2] / 3  # and far cheaper than reading the sequence again
    assert result["fits"]["fresh"]["b_ms_per_token"] > 0


def test_a_repeated_prompt_hits_the_prefix_cache_and_a_salted_repeat_does_not(vllm):
    config = metrics.scrape(vllm.client).info("cache_config")
    assert config["enable_prefix_caching"] == "True"  # vLLM's default, on in the test server too
    block = int(config["block_size"])
    first, repeat, salted = server_staircase.prefix_hits(vllm, 3 * block)
    assert (first.label, first.hit_tokens, first.queried_tokens) == ("first", 0, 3 * block)
    assert repeat.hit_tokens >= 2 * block  # whole blocks, the last token always read again
    assert salted.fresh and salted.hit_tokens == 0 and salted.queried_tokens == 3 * block


def test_the_command_refuses_the_embedded_models_options_with_url_in_one_line(capsys):
    err = one_line_error(capsys, ["staircase", "--url", "http://127.0.0.1:9/v1", "--threads", "1"], 2)
    assert "--threads" in err and "drop them" in err


def test_the_command_measures_the_server_and_prints_json(capsys, vllm_url):
    code, out, err = cli(
        capsys, "staircase", "--url", vllm_url, "--max-len", "160", "--points", "2", "--repeats", "1", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["engine"].startswith("vLLM ") and [p["n"] for p in data["series"]] == [80, 160]
    assert [h["label"] for h in data["hits"]] == ["first", "repeat", "repeat, cache off"]


def test_on_llama_server_the_repeat_reuses_the_prompt_and_cache_prompt_false_does_not(llama_url):
    backend = ServerBackend(llama_url, log=lambda message: None)
    try:
        first, repeat, fresh = server_staircase.prefix_hits(backend, 200)
        measured = list(server_staircase.measurements(backend, [50, 150], repeats=1, gaps=3))
    finally:
        backend.close()
    assert first.hit_tokens == 0 and fresh.hit_tokens == 0  # llama.cpp's timings.cache_n
    assert repeat.hit_tokens >= 190
    assert sorted(p.n for p in measured) == [50, 150] and all(p.cached_tokens == 0 for p in measured)


@pytest.mark.parametrize(
    "context, said",
    [(1, "too short for a staircase"), (2, "too short"), (14, "too short"), (15, "use --max-len 6 or less"),
     (100, "use --max-len 91 or less")],
)  # fmt: skip
def test_a_server_context_too_short_for_any_staircase_is_said_so_not_a_negative_length(context, said):
    from types import SimpleNamespace

    with pytest.raises(UsageError, match=said):
        server_staircase.check(SimpleNamespace(context_length=context), 256, 6, 2, 8)
