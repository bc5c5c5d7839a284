"""Lesson 8 in this process: the prefix cache kept in blocks (cost/prefix_blocks.py) and the lesson's
steps that choose between it and a server (cost/prefix_lesson.py), on the tiny model. Every count is
checked against an independent recount, and reuse against a forward with no cache at all.

Modules (src/tokenloop/): cost/prefix_blocks.py, cost/prefix_lesson.py."""

from __future__ import annotations

import pytest
import torch

from tokenloop.cost import kv_causal, prefix_blocks, prefix_lesson
from tokenloop.errors import UsageError
from tokenloop.model import from_scratch


@pytest.fixture(scope="module")
def model(tiny):
    return kv_causal.scratch_model(tiny.model_dir)


def test_block_hashes_chain_so_a_change_ends_the_match_at_its_block():
    ids = list(range(40))
    base = prefix_blocks.block_hashes(ids, 8)
    assert len(base) == 5  # full blocks only
    late = prefix_blocks.block_hashes(ids[:20] + [999] + ids[21:], 8)
    assert late[:2] == base[:2] and all(a != b for a, b in zip(late[2:], base[2:]))
    first = prefix_blocks.block_hashes([999] + ids[1:], 8)
    assert all(a != b for a, b in zip(first, base))  # every later block has another past
    assert prefix_blocks.block_hashes(ids, 8, salt="a") != base  # a salt changes them all


def test_a_repeat_reuses_whole_blocks_of_all_but_the_last_token_and_gives_the_same_logits(model, tiny):
    ids = prefix_blocks.prompt(tiny.encode, 45)
    store = prefix_blocks.PrefixCache(16)
    first, second = prefix_blocks.send(model, store, ids), prefix_blocks.send(model, store, ids)
    assert (first["cached_tokens"], second["cached_tokens"]) == (0, 32) == (0, prefix_blocks.predicted(45, 16))
    assert second["computed_tokens"] == 13 and store.hits == 32 and store.queries == 90
    alone = from_scratch.forward(model, ids)[-1]  # no cache at all
    assert torch.allclose(second["logits"], alone, atol=1e-4)


@pytest.mark.parametrize(("n", "cached"), [(32, 16), (33, 32), (16, 0), (17, 16)])
def test_a_prompt_of_exactly_two_blocks_reuses_one(model, tiny, n, cached):
    assert prefix_blocks.twice(model, tiny.encode, n, 16) == {"tokens": n, "cached_tokens": cached, "predicted": cached}


def test_changing_the_first_token_shares_nothing_and_one_near_the_end_shares_the_blocks_before_it(model, tiny):
    r = prefix_blocks.one_word(model, tiny.encode, 60, 16)
    first, late = r["rows"]
    assert r["base"]["cached_tokens"] == 0 and first["cached_tokens"] == 0
    assert late["position"] == 52 and late["cached_tokens"] == 48 == late["predicted"]


def test_a_small_cache_evicts_the_least_recently_used_blocks(model, tiny):
    r = prefix_blocks.survival(model, tiny.encode, 40, 8, capacity=10, fractions=(0.25, 2))
    light, heavy = r["rounds"]
    assert light["cached_tokens"] == prefix_blocks.predicted(40, 8) == r["most"]
    assert heavy["cached_tokens"] == 0 and r["evicted_blocks"] > 0


def test_a_salt_per_tenant_stops_the_probe_and_keeps_the_owners_hits(model, tiny):
    r = prefix_blocks.side_channel(model, tiny.encode, 40, 8)
    assert r["shared"]["probe_same"]["cached_tokens"] == 32 and r["shared"]["probe_other"]["cached_tokens"] == 0
    assert r["salted"]["probe_same"]["cached_tokens"] == 0 and r["salted"]["owner_again"]["cached_tokens"] == 32


def test_a_growing_request_takes_one_block_at_a_time(model, tiny):
    r = prefix_blocks.grow(model, prefix_blocks.prompt(tiny.encode, 5), 30, 8, pool=32)
    assert [j["blocks"] for j in r["jumps"]] == list(range(r["first_blocks"] + 1, r["last_blocks"] + 1))
    assert r["last_blocks"] == -(-35 // 8) and all(j["tokens"] % 8 == 1 for j in r["jumps"])
    assert r["reserved_up_front_bytes"] == r["bytes_per_block"] * 32


def test_the_lesson_steps_run_in_process_without_a_server_and_say_where(tiny):
    demo = {"prefix_len_local": 40, "grow_tokens_local": 10, "survival_len_local": 24, "survival_blocks_local": 4}
    for key, step in prefix_lesson.STEPS.items():
        r = step(None, tiny, demo)
        assert r["on"] == "embedded" and r["source"]["where"] == "in this process", key
    with pytest.raises(UsageError):
        prefix_lesson.repeat(None, None, demo)
