"""Lesson 8 on a real vLLM the tests start (cost/prefix_server.py): the block size read from its
/metrics, each step's counts against requests this test sends itself, and step 5's eviction on the
small-cache server. The figures are printed (-s) for the lesson's closing note."""

from __future__ import annotations

import math

import httpx
import pytest

from tokenloop.cost import prefix_server
from tokenloop.cost.prefix_blocks import fresh, predicted

pytestmark = [pytest.mark.server, pytest.mark.slow]


def backend(url):
    from tokenloop.backends.server import ServerBackend

    return ServerBackend(url, log=lambda message: None)


@pytest.fixture(scope="module")
def server(vllm_url):
    return backend(vllm_url)


def block_label(root: str) -> int:
    """The block size as the raw /metrics text states it, read by this test."""
    text = httpx.get(f"{root}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("vllm:cache_config_info{"))
    assert 'enable_prefix_caching="True"' in line, line  # on by default in vLLM V1
    return int(line.split('block_size="')[1].split('"')[0])


def cached(root: str, model: str, ids: list[int], salt: str) -> int:
    """One completion this test sends, and the cached prompt tokens the server says it used."""
    body = {"model": model, "prompt": ids, "max_tokens": 1, "cache_salt": salt}
    answer = httpx.post(f"{root}/v1/completions", json=body, timeout=60).json()
    return answer["usage"]["prompt_tokens_details"]["cached_tokens"]


def test_the_block_size_is_the_servers_own(server):
    g = prefix_server.geometry(server)
    assert g["block_size"] == block_label(server.root) and g["blocks"] > 0


def test_the_same_prompt_twice_is_served_from_whole_blocks(server):
    r = prefix_server.repeat(server, 300)
    print(
        "\nstep 2:",
        {k: r[k] for k in ("block_size", "speedup", "delta_queries", "delta_hits", "alone")},
        r["first"],
        r["second"],
    )
    block = block_label(server.root)
    assert r["first"]["cached_tokens"] == 0 and r["second"]["cached_tokens"] == predicted(300, block)
    if r["alone"]:  # the counters are this request's own only when nothing else ran
        assert r["delta_hits"] == r["second"]["cached_tokens"] and r["delta_queries"] == 300
    ids, salt = prefix_server.prompt(server, 300), fresh()
    assert [cached(server.root, server.model, ids, salt) for _ in range(2)] == [0, r["second"]["cached_tokens"]]


def test_two_blocks_reuse_one_and_one_token_more_reuses_both(server):
    r = prefix_server.two_blocks(server)
    print("\nstep 3:", r["rows"])
    block = block_label(server.root)
    assert [x["cached_tokens"] for x in r["rows"]] == [block, 2 * block]
    ids, salt = prefix_server.prompt(server, 2 * block), fresh()
    assert [cached(server.root, server.model, ids, salt) for _ in range(2)] == [0, r["rows"][0]["cached_tokens"]]


def test_a_changed_first_token_shares_nothing_and_a_late_one_shares_the_blocks_before_it(server):
    r = prefix_server.one_word(server, 300)
    print("\nstep 4:", r["base"], r["rows"])
    first, late = r["rows"]
    assert r["base"]["cached_tokens"] == 0 and first["cached_tokens"] == 0
    assert late["cached_tokens"] == late["predicted"] == 292 // block_label(server.root) * block_label(server.root)


def test_a_salt_per_tenant_closes_the_timing_side_channel(server):
    r = prefix_server.side_channel(server, 300)
    print("\nstep 6:", r["shared"], r["salted"])
    most = predicted(300, block_label(server.root))
    assert r["shared"]["probe_same"]["cached_tokens"] == most and r["shared"]["probe_other"]["cached_tokens"] == 0
    assert r["salted"]["probe_same"]["cached_tokens"] == 0 and r["salted"]["owner_again"]["cached_tokens"] == most


def test_one_request_takes_blocks_one_at_a_time_as_it_grows(server):
    r = prefix_server.growth(server, 300)
    print(
        "\nstep 1:",
        {k: r[k] for k in ("block_size", "blocks", "first_blocks", "last_blocks", "expected_blocks", "alone")},
        r["jumps"],
    )
    assert r["last_blocks"] == math.ceil((r["prompt_tokens"] + 300) / block_label(server.root)) == r["expected_blocks"]
    assert all(b["blocks"] - a["blocks"] == 1 for a, b in zip(r["jumps"], r["jumps"][1:]))
    assert r["first_blocks"] < r["last_blocks"]  # not reserved up front


def test_a_cached_prefix_is_evicted_as_other_prompts_fill_a_small_cache(vllm_small_cache_url):
    small = backend(vllm_small_cache_url)
    plan = prefix_server.survival_plan(small, 940)
    assert plan["tokens"] == 2176 and plan["block_size"] == block_label(small.root)
    r = prefix_server.survival(small, 940)
    print("\nstep 5:", {k: r[k] for k in ("rounds", "each", "sent", "stopped", "healthy_after")}, r["rounds_done"])
    counts = [x["cached_tokens"] for x in r["rounds_done"]]
    assert r["stopped"] is None and r["healthy_after"] and r["sent"] == plan["requests"]
    assert counts == sorted(counts, reverse=True) and counts[-1] < counts[0] <= r["most"]


def test_the_markdown_copy_carries_the_servers_own_numbers(server):
    """`tokenloop lesson --url … --markdown` for Lesson 8: steps 2-4 and 6 measured on the server."""
    from tokenloop.lessons import content
    from tokenloop.lessons import markdown as lesson_markdown

    lesson = content.load("day08")
    live = lesson_markdown.measure(server, lesson)
    text = lesson_markdown.render(lesson, live)
    print("\n" + "\n".join(line for line in text.splitlines() if line.startswith(("Measured", "|"))))
    block = block_label(server.root)
    assert set(live["results"]) == {"prefix_repeat", "prefix_two_blocks", "prefix_one_word", "prefix_side_channel"}
    assert f"the second had {predicted(940, block)} of its 940 tokens from the cache (blocks of {block})" in text
    assert f"| {2 * block} | {block} | {block} |" in text and "| first (token 1) | 0 of 940 |" in text
    assert "Not measured: step 5" not in text and "run the prefix_survival demo" in text
