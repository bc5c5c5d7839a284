"""Lesson 3's live routes (web/routes/lesson03.py, web/live_prefill.py) on the tiny real model:
each answers with its numbers, its source and what kind of reveal it is; step 2 reuses step 1's
kept measurement; step 4's positions are the logits' argmax, checked directly; the Markdown copy
(lessons/markdown_prefill.py) carries the numbers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tokenloop.web import create_app

SMALL = {
    "prefill_len": 40,
    "prefill_repeats": 2,
    "answer_tokens": 30,
    "answer_steps": 3,
    "attention_lens": [64, 128],
}
Q = "?lesson=day03&page=p1"


@pytest.fixture
def client(tiny):
    return TestClient(create_app(tiny, lesson="day03", demo=SMALL))


def test_phases_then_cost_reuses_the_same_measurement(client):
    r = client.post(f"/api/live/prefill_phases{Q}", json={}).json()
    assert r["on"] == "embedded" and r["reveal"]["kind"] == "measured"
    assert r["source"]["engine"].startswith("tokenloop embedded") and r["longest"] == 40
    cost = client.post(f"/api/live/token_cost{Q}", json={}).json()
    slope = r["fit"]["b_ms_per_token"]
    assert cost["slope_ms_per_token"] == slope and cost["itl_ms"] == r["itl_ms"]
    assert cost["ratio"] == (r["itl_ms"] / slope if slope > 0 else None)


def test_cost_alone_measures_step_one_first(client):
    cost = client.post(f"/api/live/token_cost{Q}", json={}).json()
    kept = client.get("/api/live/kept?lesson=day03").json()["results"]
    assert kept["prefill_phases"]["fit"]["b_ms_per_token"] == cost["slope_ms_per_token"]


def test_answer_vs_prompt_is_projected_from_the_steps_timed(client):
    r = client.post(f"/api/live/answer_vs_prompt{Q}", json={}).json()
    assert r["tokens"] == 30 and r["long_answer"]["timed_steps"] == 3
    assert r["reveal"] == {"kind": "projected", "from_steps": 3, "scored": True}


def test_positions_are_every_row_of_the_prompts_logits(client, tiny):
    from tokenloop.lessons import content

    r = client.post(f"/api/live/prompt_positions{Q}", json={}).json()
    ids = tiny.encode(content.load("day03")["prompt"])
    assert r["shape"] == [len(ids), tiny.vocab_size]
    assert [row["top1_id"] for row in r["rows"]] == tiny.all_logits(ids).argmax(-1).tolist()


def test_attention_memory_is_projected_to_8192(client, tiny):
    r = client.post(f"/api/live/attention_memory{Q}", json={}).json()
    assert [p["tokens"] for p in r["points"]] == [64, 128]
    assert r["heads"] == tiny.config.num_attention_heads
    assert r["projected"]["tokens"] == 8192 and r["reveal"]["kind"] == "projected"


def test_markdown_copy_carries_the_live_numbers(client):
    phases = client.post(f"/api/live/prefill_phases{Q}", json={}).json()
    client.post(f"/api/live/attention_memory{Q}", json={})
    md = client.post("/api/lesson/markdown", json={"lesson": "day03", "guesses": {}}).json()["markdown"]
    assert f"| {phases['series'][0]['n']} | {phases['series'][0]['ttft_ms']:.1f} |" in md
    assert "Projected to 8,192 tokens" in md


def test_steps_one_to_three_run_on_the_connected_vllm(vllm_url, smol):
    """With --url, steps 1-3 time the server itself (fresh prompts, a new cache salt each, streamed):
    the prefill grows with the prompt, a decode gap is measured, step 2 divides the two, and step 3
    streams a whole answer; each names the server as its source."""
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(vllm_url, log=lambda message: None)
    demo = {**SMALL, "prefill_len": 256, "answer_tokens": 24}
    client = TestClient(create_app(server, compare=smol, server_url=server.root, demo=demo))
    r = client.post(f"/api/live/prefill_phases{Q}", json={}).json()
    assert r["on"] == "server" and r["source"]["engine"] == "vLLM" and r["reveal"]["kind"] == "measured"
    shortest, longest = r["series"][0], r["series"][-1]
    assert longest["n"] > shortest["n"] and longest["ttft_ms"] > 0 and longest["itl_ms"] > 0
    cost = client.post(f"/api/live/token_cost{Q}", json={}).json()
    assert cost["itl_ms"] == r["itl_ms"] and cost["slope_ms_per_token"] == r["fit"]["b_ms_per_token"]
    answer = client.post(f"/api/live/answer_vs_prompt{Q}", json={}).json()
    assert answer["on"] == "server" and answer["tokens"] == 24 and answer["source"]["engine"] == "vLLM"
    assert answer["long_answer"]["ms"] > answer["long_answer"]["first_ms"] > 0
