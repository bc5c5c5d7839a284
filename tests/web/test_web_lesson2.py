"""Lesson 2's live routes (web/live_tokens.py, web/routes/lesson02.py): each answer is cost/tokens.py's
count on the connected tokenizer, with its reveal label and source, kept for the session under its
live key, and written into the lesson's Markdown (lessons/markdown_tokens.py).

Modules (src/tokenloop/): web/live_tokens.py, web/routes/lesson02.py, lessons/markdown_tokens.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tokenloop.lessons import content
from tokenloop.lessons.markdown import measure, render

Q = "?lesson=day02&page=p1"
KEYS = ["token_pieces", "chat_template", "tokens_per_kchar", "context_limits", "prompt_surprise"]


def client_of(backend):
    from tokenloop.web import create_app

    return TestClient(create_app(backend, lesson="day02"))


def test_the_lesson_loads_with_a_live_route_for_every_step_and_is_here_on_the_map():
    lesson = content.load("day02")
    assert [s["live"] for s in lesson["steps"]] == KEYS
    assert lesson["course_map"]["here"] == {"number": 2, "id": "day02"}
    samples = next(s for s in lesson["steps"] if s["id"] == "text_kinds")
    assert list(samples["samples"]) == samples["choices"]  # step 3 grades a pick by its sample's name
    assert {"id": "day02", "title": lesson["title"]} in content.listing()


@pytest.mark.parametrize("key", ["token_pieces", "tokens_per_kchar", "context_limits", "prompt_surprise"])
def test_each_route_counts_keeps_and_names_its_source(tiny, key):
    client = client_of(tiny)
    r = client.post(f"/api/live/{key}{Q}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reveal"]["kind"] == "measured" and body["on"] == "the embedded model in this process"
    assert body["source"]["model"] == tiny.model and "embedded" in body["source"]["engine"]
    assert client.get("/api/live/kept?lesson=day02").json()["results"][key] == body


def test_step_1_is_the_tokenizers_own_split(tiny):
    body = client_of(tiny).post(f"/api/live/token_pieces{Q}").json()
    prompt = content.load("day02")["prompt"]
    assert [t["id"] for t in body["tokens"]] == tiny.encode(prompt)


def test_step_2_on_the_real_model_is_checked_by_the_apps_own_chat_call(smol):
    client = client_of(smol)
    body = client.post(f"/api/live/chat_template{Q}").json()
    prompt = content.load("day02")["prompt"]
    direct = client.post("/tokenize", json={"messages": [{"role": "user", "content": prompt}]}).json()
    assert body["count"] == direct["count"] == body["usage_prompt_tokens"]
    assert "/v1/chat/completions" in body["usage_how"]
    assert body["own"] == len(smol.encode(prompt)) and body["added"] == direct["count"] - body["own"] > 0
    assert sum(t["yours"] for t in body["tokens"]) == body["own"]


def test_step_2_says_so_when_the_model_has_no_chat_template(tiny):
    r = client_of(tiny).post(f"/api/live/chat_template{Q}")
    assert r.status_code == 400 and "no chat template" in r.json()["error"]


def test_the_markdown_copy_carries_the_live_counts(smol):
    lesson = content.load("day02")
    live = measure(smol, lesson)
    text = render(lesson, live)
    r = live["results"]
    assert f"**{r['token_pieces']['count']} tokens**" in text
    assert f"became **{r['chat_template']['count']}**" in text
    assert f"| {r['tokens_per_kchar']['rows'][0]['kind']} |" in text
    assert f"HTTP {r['context_limits']['near']['status']}" in text
    assert f"rank {r['prompt_surprise']['most_surprising']['rank']:,}" in text


def test_the_cli_markdown_on_vllm_carries_the_servers_own_counts(vllm_url, smol):
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(vllm_url, log=lambda message: None)
    lesson = content.load("day02")
    text = render(lesson, measure(server, lesson, local=smol))
    call = lambda path, body: server.client.call("POST", path, {"model": server.model, **body})  # noqa: E731
    plain = call("/tokenize", {"prompt": lesson["prompt"]})
    chat = call(
        "/tokenize", {"messages": [{"role": "user", "content": lesson["prompt"]}], "add_generation_prompt": True}
    )
    assert f"**{plain['count']} tokens**" in text and f"became **{chat['count']}**" in text
    assert "usage.prompt_tokens of a real /v1/chat/completions call" in text
    assert f"context {plain['max_model_len']:,} tokens" in text and "vLLM" in text


def test_the_markdown_copy_of_a_model_without_a_chat_template_says_step_2_was_not_measured(tiny):
    lesson = content.load("day02")
    live = measure(tiny, lesson)
    assert "chat_template" not in live["results"] and "token_pieces" in live["results"]
    assert "Not measured in this copy" in render(lesson, live)
