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


def test_ttft_account_in_process_is_tokenize_forward_and_the_rest(client):
    r = client.post(f"/api/live/ttft_account{Q}", json={}).json()
    s = r["split"]
    assert r["on"] == "embedded" and r["reveal"]["kind"] == "measured" and len(r["runs"]) == 3
    assert s["client_ttft_ms"] == s["tokenize_ms"] + s["forward_ms"] + s["rest_ms"]
    assert r["source"]["engine"].startswith("tokenloop embedded")


def test_markdown_copy_carries_the_live_numbers(client):
    phases = client.post(f"/api/live/prefill_phases{Q}", json={}).json()
    client.post(f"/api/live/attention_memory{Q}", json={})
    ttft = client.post(f"/api/live/ttft_account{Q}", json={}).json()
    md = client.post("/api/lesson/markdown", json={"lesson": "day03", "guesses": {}}).json()["markdown"]
    assert f"| {phases['series'][0]['n']} | {phases['series'][0]['ttft_ms']:.1f} |" in md
    assert "Projected to 8,192 tokens" in md
    assert f"forward (the prefill) {ttft['split']['forward_ms']:.1f} ms" in md


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


@pytest.fixture(scope="module")
def on_vllm(vllm_url, smol):
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(vllm_url, log=lambda message: None)
    return server, TestClient(create_app(server, compare=smol, server_url=server.root, demo=SMALL))


def test_positions_on_vllm_are_its_own_prompt_logprobs(on_vllm):
    """Step 4 with --url on vLLM: each row's top-1 is the server's rank-1 token under the prompt,
    checked against a prompt_logprobs call the test makes itself; the last row is the greedy answer."""
    from tokenloop.lessons import content

    server, client = on_vllm
    r = client.post(f"/api/live/prompt_positions{Q}", json={}).json()
    ids = server.encode(content.load("day03")["prompt"])
    direct = server.client.call(
        "POST",
        "/v1/completions",
        {"model": server.model, "prompt": ids, "max_tokens": 1, "temperature": 0, "prompt_logprobs": 1},
    )["choices"][0]
    entries = direct["prompt_logprobs"]
    assert entries[0] is None and len(entries) == len(ids)
    tops = [int(min(e.items(), key=lambda kv: kv[1]["rank"])[0]) for e in entries[1:]]
    assert r["on"] == "server" and r["source"]["engine"] == "vLLM" and r["tokens"] == len(ids)
    assert [row["top1_id"] for row in r["rows"][:-1]] == tops
    assert r["rows"][-1]["top1"] == direct["text"] and r["rows"][-1]["next"] is None
    assert r["hits"] == sum(top == nxt for top, nxt in zip(tops, ids[1:]))
    assert r["request"]["body"]["prompt_logprobs"] == 1
    md = client.post("/api/lesson/markdown", json={"lesson": "day03", "guesses": {}}).json()["markdown"]
    assert "read back with prompt_logprobs" in md


def test_ttft_account_on_vllm_is_its_own_per_request_metrics(on_vllm):
    """Step 6 with --url on vLLM (--enable-per-request-metrics): every request's client TTFT is
    queue + server TTFT + the rest, the server's parts read from its own answer; a streamed request
    the test sends itself carries the same metrics fields."""
    from tokenloop.backends.server import dialects
    from tokenloop.cost.server_staircase import send

    server, client = on_vllm
    r = client.post(f"/api/live/ttft_account{Q}", json={}).json()
    a = r["account"]
    assert r["on"] == "server" and r["source"]["engine"] == "vLLM" and a["source"] == "vLLM per-request metrics"
    assert a["requests"] == a["of"] == 3 and r["warmth"]["mode"] == "cold"
    for p in a["per_request"]:
        assert p["server_ttft_ms"] > 0 and p["queue_ms"] is not None and p["queue_ms"] >= 0
        assert abs(p["client_ttft_ms"] - (p["queue_ms"] + p["server_ttft_ms"] + p["rest_ms"])) < 1e-6
        assert p["client_ttft_ms"] > p["server_ttft_ms"]
        assert p["cached_tokens"] == 0
    assert r["largest"] in ("queue_ms", "server_ttft_ms", "rest_ms")
    direct = send(server, r["request"]["body"]["prompt"], 1, dialects.uncached_fields(server.dialect, "lesson3-test"))
    assert direct.metrics["time_to_first_token_ms"] > 0 and "queue_time_ms" in direct.metrics
    md = client.post("/api/lesson/markdown", json={"lesson": "day03", "guesses": {}}).json()["markdown"]
    assert f"| 1 | {a['per_request'][0]['client_ttft_ms']:.1f} |" in md
