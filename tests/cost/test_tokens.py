"""Lesson 2's counts (cost/tokens.py) on the tiny real model, each against the tokenizer or the
logits called directly; the chat template's share and the limits on the real model (its template,
its 8,192-token context)."""

from __future__ import annotations

import pytest
import torch

from tokenloop.cost import tokens
from tokenloop.errors import UsageError

TEXT = "Kubernetes pods are scheduled by the scheduler"


def test_pieces_are_the_tokenizers_ids_and_texts(tiny):
    found = tokens.pieces(tiny, TEXT)
    ids = tiny.encode(TEXT)
    assert [t["id"] for t in found["tokens"]] == ids and found["count"] == len(ids)
    assert "".join(t["piece"] for t in found["tokens"]) == TEXT
    assert found["chars"] == len(TEXT) and found["words"] == 7
    assert found["request"]["body"] == {"model": tiny.model, "prompt": TEXT, "return_token_strs": True}


def test_find_names_the_last_place_a_run_of_ids_starts():
    assert tokens.find([2, 3], [1, 2, 3, 4, 2, 3]) == 4
    assert tokens.find([2, 3], [1, 2, 4]) is None
    assert tokens.find([], [1]) == 1


def test_tokens_per_kilochar_ranks_kinds_by_the_tokenizers_own_counts(tiny):
    samples = {"prose": TEXT, "ids": "3f2a9c1e-7b4d-4e8a-9f06-1c2d3e4f5a6b"}
    found = tokens.per_kilochar(tiny, samples)
    for row in found["rows"]:
        assert row["tokens"] == len(tiny.encode(samples[row["kind"]]))
        assert row["per_1000"] == pytest.approx(1000 * row["tokens"] / len(samples[row["kind"]]))
    assert found["dearest"] == "ids" and found["cheapest"] == "prose"  # the tiny BPE learned the prose
    assert found["spread"] == pytest.approx(found["rows"][-1]["per_1000"] / found["rows"][0]["per_1000"])


def test_room_refuses_what_outgrows_the_context_in_vllms_words(tiny):
    tokens.room(tiny, tiny.context_length - 10, 10)
    with pytest.raises(UsageError, match=f"maximum context length is {tiny.context_length} tokens"):
        tokens.room(tiny, tiny.context_length - 10, 11)


def test_limits_in_process_are_the_teaching_endpoints_refusals(tiny):
    found = tokens.limits(tiny)
    assert found["near"]["status"] == 400 and "maximum context length" in found["near"]["error"]
    assert found["over"]["prompt_tokens"] == tiny.context_length + tokens.OVER and found["over"]["status"] == 400
    assert found["outcome"] == "error" and found["answer"] == 0
    body = found["request"]["body"]  # the ids sent, so "See it raw" runs as written
    assert len(body["prompt"]) == found["near"]["prompt_tokens"] and all(isinstance(i, int) for i in body["prompt"])


def test_outcome_reads_what_came_back():
    ok = {"status": 200, "prompt_tokens": 1900, "usage_prompt": 1900, "max_tokens": 500}
    assert tokens.outcome({**ok, "completion_tokens": 148}) == "fewer"
    assert tokens.outcome({**ok, "completion_tokens": 500}) == "all"
    assert tokens.outcome({**ok, "usage_prompt": 1000, "completion_tokens": 500}) == "truncated"
    assert tokens.outcome({"status": 400}) == "error"


def test_surprise_ranks_each_piece_by_the_logits_before_it(tiny):
    found = tokens.surprise(tiny, TEXT)
    ids = tiny.encode(TEXT)
    logits = tiny.all_logits(ids).float()
    assert found["tokens"][0]["rank"] is None and found["scored"] == len(ids) - 1
    for i in range(1, len(ids)):
        row = logits[i - 1]
        assert found["tokens"][i]["rank"] == int((row > row[ids[i]]).sum()) + 1
        assert found["tokens"][i]["logprob"] == pytest.approx(float(torch.log_softmax(row, -1)[ids[i]]), abs=1e-5)
    assert found["top1"] == sum(t["rank"] == 1 for t in found["tokens"][1:])
    assert found["most_surprising"]["rank"] == max(t["rank"] for t in found["tokens"][1:])


def test_the_chat_template_share_marks_the_learners_pieces(smol):
    text = "Kubernetes pods are scheduled by the"
    found = tokens.chat_share(smol, text)
    ids = smol.encode(smol.chat_text([{"role": "user", "content": text}]))
    assert [t["id"] for t in found["tokens"]] == ids and found["count"] == len(ids)
    assert found["found"] and [t["id"] for t in found["tokens"] if t["yours"]] == smol.encode(text)
    assert found["added"] == len(ids) - len(smol.encode(text)) > 0
    assert found["usage_prompt_tokens"] == len(ids)
