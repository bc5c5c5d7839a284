"""Lesson 8's routes on the tiny model (web/routes/lesson08.py, web/live_prefix.py): every step
answers in this process and says so, its counts equal the test's own run of the block cache,
step 5 needs no consent here, and bad bodies are one-line refusals, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tokenloop.cost import kv_causal, prefix_blocks
from tokenloop.web import create_app

DEMO = {"prefix_len_local": 40, "grow_tokens_local": 20, "survival_len_local": 24, "survival_blocks_local": 4}


@pytest.fixture(scope="module")
def client(tiny):
    return TestClient(create_app(tiny, lesson="day08", demo=DEMO))


def post(client, key: str, body: dict | None = None) -> dict:
    answer = client.post(f"/api/live/{key}?lesson=day08", json=body or {})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_every_step_runs_in_this_process_and_is_kept_for_the_session(client, tiny):
    for key in (
        "prefix_growth",
        "prefix_repeat",
        "prefix_two_blocks",
        "prefix_one_word",
        "prefix_survival",
        "prefix_side_channel",
    ):
        r = post(client, key)
        assert r["on"] == "embedded" and r["reveal"]["kind"] == "measured" and r["source"]["where"] == "in this process"
    kept = client.get("/api/live/kept?lesson=day08").json()["results"]
    assert set(kept) >= {"prefix_repeat", "prefix_survival"}


def test_the_counts_are_the_block_caches_own(client, tiny):
    model = kv_causal.scratch_model(tiny.model_dir)
    two = post(client, "prefix_two_blocks")
    assert [r["cached_tokens"] for r in two["rows"]] == [16, 32] == [r["predicted"] for r in two["rows"]]
    again = prefix_blocks.two_blocks(model, tiny.encode, 16)
    assert [r["cached_tokens"] for r in again["rows"]] == [16, 32]
    repeat = post(client, "prefix_repeat")
    assert repeat["second"]["cached_tokens"] == prefix_blocks.predicted(40, 16) == repeat["delta_hits"]
    growth = post(client, "prefix_growth")
    assert growth["last_blocks"] == -(-(8 + 20) // 16)


@pytest.mark.parametrize(
    ("body", "says"),
    [({"consent": True, "force": 1}, "force"), ({"consent": "maybe"}, "consent")],
)
def test_step_5_refuses_a_body_it_does_not_know(client, body, says):
    answer = client.post("/api/live/prefix_survival?lesson=day08", json=body)
    assert answer.status_code == 422 and says in answer.json()["error"]


def test_a_server_with_prefix_caching_off_is_refused_in_one_line():
    """vLLM with --no-enable-prefix-caching says so in cache_config_info; the test servers all share
    blocks, so the check is run on the geometry such a server states."""
    from tokenloop.cost import prefix_server
    from tokenloop.errors import ServerError

    on = {"block_size": 128, "blocks": 17, "tokens": 2176, "prefix_caching": "True"}
    assert prefix_server.sharing(on) == on
    with pytest.raises(ServerError, match=r"prefix caching off \(--no-enable-prefix-caching\)"):
        prefix_server.sharing({**on, "prefix_caching": "False"})
