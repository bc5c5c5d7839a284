"""Lesson 2's measurements: what the model reads, counted in its own token ids.

Every budget is counted in tokens (context, `max_tokens`, KV memory, time, price), so each function
here asks the tokenizer the learner runs: the embedded model's in this process (`backend.encode`),
or the connected server's own, over HTTP:

- vLLM: `POST /tokenize {"prompt" | "messages", "add_generation_prompt", "return_token_strs"}` →
  `{"count", "tokens", "token_strs", "max_model_len"}` (the pieces as its vocabulary spells them,
  `Ġ` for a leading space); `prompt_logprobs` for the prompt's own scores (`prefill.server_positions`);
- llama-server: `/tokenize {"content", "with_pieces": true}` → `{"tokens": [{"id", "piece"}]}`;
- any other: the backend's `encode`, each piece's text asked one id at a time.

`room` is the one rule for "does this request fit the context", shared with the app's teaching
endpoint (`web/completions.py`), so the lesson's embedded answer at the limit is that endpoint's.
"""

from __future__ import annotations

import math

from ..backends.server import dialects
from ..backends.server.client import Refused
from ..errors import UsageError
from ..loop import generate
from ..measure import filler
from ..sampling import Sampler
from . import prefill

# Step 4: the prompt leaves this many tokens of the context free, and asks for more than that.
ROOM, ASKED, OVER = 148, 500, 52
# Step 4's choices, in the lesson's order: what came back for the near-limit request.
OUTCOMES = ("error", "all", "fewer", "truncated")


def room(backend, prompt_tokens: int, max_tokens: int) -> None:
    """Refuse a request whose prompt and answer together outgrow the context (vLLM's wording)."""
    if prompt_tokens + max_tokens > backend.context_length:
        raise UsageError(
            f"This model's maximum context length is {backend.context_length} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, {max_tokens} in the completion): "
            "shorten the prompt or lower max_tokens"
        )


def _vllm(backend) -> bool:
    return not backend.in_process and backend.dialect is dialects.VLLM


def _rows(ids: list[int], texts: list[str]) -> list[dict]:
    return [{"id": i, "piece": t} for i, t in zip(ids, texts, strict=True)]


def pieces(backend, text: str) -> dict:
    """Step 1: the text's token ids and the piece each stands for, and the request that got them."""
    request = {"path": "/tokenize", "body": {"model": backend.model, "prompt": text, "return_token_strs": True}}
    if _vllm(backend):
        answer = backend.client.call("POST", "/tokenize", request["body"])
        rows = _rows(answer["tokens"], answer.get("token_strs") or [backend.token_text(i) for i in answer["tokens"]])
    elif not backend.in_process and backend.dialect is dialects.LLAMA_CPP:
        request = {"path": "/tokenize", "body": {"content": text, "with_pieces": True}}
        answer = backend.client.call("POST", "/tokenize", request["body"])
        rows = [{"id": t["id"], "piece": t["piece"]} for t in answer["tokens"]]
    else:
        ids = backend.encode(text)
        rows = _rows(ids, [backend.token_text(i) for i in ids])
    return {
        "text": text,
        "chars": len(text),
        "words": len(text.split()),
        "count": len(rows),
        "tokens": rows,
        "request": request,
    }


def find(inner: list[int], outer: list[int]) -> int | None:
    """Where `inner` starts inside `outer` (the last place, where the user's message sits), or None."""
    n = len(inner)
    for start in range(len(outer) - n, -1, -1):
        if outer[start : start + n] == inner:
            return start
    return None


def chat_share(backend, text: str, chat=None) -> dict:
    """Step 2: the same text as one user message, through the model's chat template: the ids the
    model reads, which of them are the learner's, and `usage.prompt_tokens` of a real chat call
    (on a server its /v1/chat/completions; in this process `chat(body)`, the app's own endpoint,
    where the caller gives it)."""
    messages = [{"role": "user", "content": text}]
    own = [t["id"] for t in pieces(backend, text)["tokens"]]
    body = {"model": backend.model, "messages": messages, "add_generation_prompt": True, "return_token_strs": True}
    requests = [{"path": "/tokenize", "body": body}]  # the same request the app's own /tokenize answers
    if _vllm(backend):
        answer = backend.client.call("POST", "/tokenize", body)
        ids, texts = answer["tokens"], answer.get("token_strs") or [backend.token_text(i) for i in answer["tokens"]]
    else:
        ids = backend.encode(text, chat=True)
        texts = [backend.token_text(i) for i in ids]
    body = {"model": backend.model, "messages": messages, "max_tokens": 1, "temperature": 0}
    requests.append({"path": "/v1/chat/completions", "body": body})
    if backend.in_process and chat is not None:  # the app's own /v1/chat/completions, called in process
        usage = {**chat(body)["usage"], "how": "usage.prompt_tokens of the app's /v1/chat/completions, in process"}
    elif backend.in_process:
        usage = {"prompt_tokens": len(ids), "how": "the ids the loop reads for a chat call"}
    else:
        answer = backend.client.call("POST", "/v1/chat/completions", body)
        usage = {**(answer.get("usage") or {}), "how": "usage.prompt_tokens of a real /v1/chat/completions call"}
    start = find(own, list(ids))
    rows = _rows(list(ids), list(texts))
    for i, row in enumerate(rows):
        row["yours"] = start is not None and start <= i < start + len(own)
    return {
        "text": text,
        "own": len(own),
        "count": len(ids),
        "added": len(ids) - len(own),
        "found": start is not None,
        "tokens": rows,
        "usage_prompt_tokens": usage.get("prompt_tokens"),
        "usage_how": usage["how"],
        "requests": requests,
    }


def per_kilochar(backend, samples: dict[str, str]) -> dict:
    """Step 3: tokens per 1,000 characters of each kind of text, on this backend's tokenizer."""
    rows = []
    for kind, text in samples.items():
        count = pieces(backend, text)["count"]
        rows.append({"kind": kind, "chars": len(text), "tokens": count, "per_1000": 1000 * count / len(text)})
    rows.sort(key=lambda r: r["per_1000"])
    return {
        "rows": rows,
        "cheapest": rows[0]["kind"],
        "dearest": rows[-1]["kind"],
        "spread": rows[-1]["per_1000"] / rows[0]["per_1000"],
    }


def _send(backend, ids: list[int], max_tokens: int) -> dict:
    """One completion of these prompt ids: what came back, or the refusal word for word."""
    sent = {"prompt_tokens": len(ids), "max_tokens": max_tokens}
    if backend.in_process:
        try:
            room(backend, len(ids), max_tokens)  # the teaching endpoint's rule: refused before any work
        except UsageError as e:
            return {**sent, "status": 400, "error": str(e)}
        made = [r for r in generate(backend, ids, max_tokens, Sampler()) if hasattr(r, "chosen")]
        finish = "stop" if made and made[-1].chosen.id in backend.eos_ids else "length"
        return {
            **sent,
            "status": 200,
            "finish_reason": finish,
            "completion_tokens": len(made),
            "usage_prompt": len(ids),
        }
    body = {"model": backend.model, "prompt": ids, "max_tokens": max_tokens, "temperature": 0}
    try:
        answer = backend.client.call("POST", "/v1/completions", body)
    except Refused as e:
        return {**sent, "status": e.status, "error": e.server_message}
    choice, usage = answer["choices"][0], answer.get("usage") or {}
    return {
        **sent,
        "status": 200,
        "finish_reason": choice.get("finish_reason"),
        "completion_tokens": usage.get("completion_tokens"),
        "usage_prompt": usage.get("prompt_tokens"),
    }


def outcome(near: dict) -> str:
    """Which of the lesson's four answers the near-limit request got."""
    if near["status"] != 200:
        return "error"
    if near.get("usage_prompt") is not None and near["usage_prompt"] < near["prompt_tokens"]:
        return "truncated"
    return "all" if near["completion_tokens"] == near["max_tokens"] else "fewer"


def limits(backend) -> dict:
    """Step 4: a prompt that leaves ROOM tokens of the context, asking for ASKED; then one OVER
    the context by itself. Sent for real (filler text as ids), each answer as it came."""
    context = backend.context_length
    near_ids = filler.token_ids(backend, max(1, context - ROOM))
    near = _send(backend, near_ids, ASKED)
    over = _send(backend, filler.token_ids(backend, context + OVER), 1)
    # the very ids sent, so "See it raw" runs as written (a few thousand numbers, tens of kB)
    shape = {"model": backend.model, "prompt": near_ids, "max_tokens": ASKED, "temperature": 0}
    return {
        "context": context,
        "near": near,
        "over": over,
        "outcome": outcome(near),
        "answer": OUTCOMES.index(outcome(near)),
        "request": {"path": "/v1/completions", "body": shape},
    }


def surprise(backend, text: str) -> dict:
    """Step 5: how the model scored each piece of the prompt given the pieces before it (its
    logprob and rank among the whole vocabulary): vLLM's `prompt_logprobs`, or the embedded
    model's logits over the prompt (teacher forcing: one forward, every position at once)."""
    ids = backend.encode(text)
    request = None
    if backend.in_process:
        import torch

        logp = torch.log_softmax(backend.all_logits(ids).float(), dim=-1)  # (T, V)
        scored = [None] + [
            (float(logp[i - 1, t]), int((logp[i - 1] > logp[i - 1, t]).sum()) + 1) for i, t in enumerate(ids) if i
        ]
        texts = [backend.token_text(i) for i in ids]
    else:
        found = prefill.server_positions(backend, ids)
        request = found["request"]
        scored = [None] + [
            (math.log(r["next_prob"]), r["next_rank"]) if r["next_prob"] else (None, None) for r in found["rows"][:-1]
        ]
        texts = [r["token"] for r in found["rows"]]
    rows = [
        {"id": t, "piece": texts[i], "logprob": s[0] if s else None, "rank": s[1] if s else None}
        for i, (t, s) in enumerate(zip(ids, scored, strict=True))
    ]
    ranked = [r for r in rows if r["rank"] is not None]
    worst = max(ranked, key=lambda r: r["rank"]) if ranked else None
    return {
        "text": text,
        "count": len(ids),
        "tokens": rows,
        "scored": len(ranked),
        "top1": sum(r["rank"] == 1 for r in ranked),
        "top1_share": sum(r["rank"] == 1 for r in ranked) / len(ranked) if ranked else 0.0,
        "most_surprising": worst,
        "request": request,
    }
