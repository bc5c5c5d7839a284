"""Lesson 2's steps with --url on a real llama-server (web/live_tokens.py, cost/tokens.py): its
/tokenize with_pieces for the pieces, its /apply-template for the chat count (checked by its own
chat call), its tokenizer for the kinds of text, the limit sent for real, and step 5, which
llama-server can't score, on the embedded model with the one-line reason. Each against a direct
call the test makes."""

from __future__ import annotations

import pytest

from tokenloop.cost import tokens
from tokenloop.lessons import content
from tokenloop.web import live_tokens

PROMPT = content.load("day02")["prompt"]


@pytest.fixture(scope="module")
def server(llama_url):
    from tokenloop.backends.server import ServerBackend

    return ServerBackend(llama_url, log=lambda message: None)


def test_pieces_are_llama_servers_own(server, smol):
    found = live_tokens.pieces(server, smol)
    direct = server.client.call("POST", "/tokenize", {"content": PROMPT, "with_pieces": True})["tokens"]
    assert [(t["id"], t["piece"]) for t in found["tokens"]] == [(t["id"], t["piece"]) for t in direct]
    assert found["source"]["engine"] == server.caps.kind and "llama" in found["on"]


def test_the_chat_count_is_checked_by_a_real_chat_call(server, smol):
    found = live_tokens.chat(server, smol)
    usage = server.client.call(
        "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 1}
    )["usage"]
    assert found["usage_prompt_tokens"] == usage["prompt_tokens"]
    assert found["count"] == len(server.encode(PROMPT, chat=True)) and found["added"] > 0


def test_the_limit_is_sent_for_real_and_the_answer_shown_as_it_came(server, smol):
    found = live_tokens.limits(server, smol)
    assert found["context"] == server.context_length
    assert found["over"]["status"] >= 400 and found["over"]["error"]
    assert found["outcome"] in tokens.OUTCOMES


def test_step_5_runs_beside_llama_server_and_says_why(server, smol):
    found = live_tokens.surprise(server, smol)
    assert "returns no scores for the prompt's positions" in found["why"]
    assert "embedded" in found["source"]["engine"]
    assert [t["id"] for t in found["tokens"]] == smol.encode(PROMPT)
