"""One /v1/completions call to a vLLM, made by the test itself with httpx (not tokenloop's
backend): the prompt tokenized by the server, one new token, its top logprobs keyed by token id.
The reference the Lesson 6 tests check the app's reveals against."""

from __future__ import annotations

import httpx


def completion(url: str, model: str, prompt: str, **fields) -> dict:
    """`fields` go into the request as they are (temperature, seed, logprobs, top_p, max_tokens ...).
    Returns the server's pick (`pick`, all its ids `ids`), text, the first position's top logprobs
    by id (`top`) and the pick's own logprob (`logprob`)."""
    root = url.removesuffix("/v1").rstrip("/")
    ids = httpx.post(f"{root}/tokenize", json={"model": model, "prompt": prompt}, timeout=60).json()["tokens"]
    body = {"model": model, "prompt": ids, "max_tokens": 1, "top_k": -1, "top_p": 1.0, **fields}
    body.update(return_tokens_as_token_ids=True, return_token_ids=True)
    choice = httpx.post(f"{root}/v1/completions", json=body, timeout=120).json()["choices"][0]
    tops = (choice.get("logprobs") or {}).get("top_logprobs") or [{}]
    top = {int(key.split(":")[1]): lp for key, lp in (tops[0] or {}).items()}
    chosen = ((choice.get("logprobs") or {}).get("token_logprobs") or [None])[0]
    return {
        "pick": choice["token_ids"][0],
        "ids": choice["token_ids"],
        "text": choice["text"],
        "top": top,
        "logprob": chosen,
    }
