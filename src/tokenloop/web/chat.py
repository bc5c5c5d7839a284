"""The teaching endpoint's `/v1/chat/completions`: a conversation rendered through the model's own
chat template (ending with the assistant's turn marker), tokenized, and run through the project's
one loop by `completions.Call`; only the answer's shape is a chat's.

The answer has vLLM's shape (`vllm/entrypoints/openai/chat_completion/protocol.py`):

    {"id": "chatcmpl-…", "object": "chat.completion", "created": …, "model": "…",
     "choices": [{"index": 0, "message": {"role": "assistant", "content": "…"},
                  "logprobs": {"content": [{"token": "…", "logprob": -0.4, "bytes": [..],
                                            "top_logprobs": [{"token", "logprob", "bytes"}, …]}]},
                  "finish_reason": "stop" | "length", "stop_reason": null | "<the stop text>"}],
     "usage": {"prompt_tokens": 38, "completion_tokens": 1, "total_tokens": 39}}

- `logprobs: true` adds the picked token's logprob, `top_logprobs: k` (≤ 20) the k most likely of
  the raw distribution at that step (vLLM's default `raw_logprobs`, before temperature and top-p).
- streamed: a first chunk with `delta: {"role": "assistant", "content": ""}`, then one per token
  (`delta: {"content"}`, its logprobs), the last with its `finish_reason`; with
  `stream_options.include_usage` a chunk of usage and no choices; then `data: [DONE]`.
- `max_tokens` (or `max_completion_tokens`) defaults to what the context has left, at most
  `completions.MAX_NEW`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import UsageError
from ..records import Step
from . import completions
from .completions import MAX_LOGPROBS, MAX_NEW, Call, CompletionIn, StreamOptions


class ChatIn(BaseModel):
    """The chat request, as vLLM reads it (the fields this endpoint uses)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    messages: list[Any]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    ignore_eos: bool = False
    user: str | None = None


def parse(data: Any) -> ChatIn:
    """The chat request checked, or a UsageError whose one line says what to change."""
    if isinstance(data, dict):
        data = dict(data)
        for name, neutral in completions.NEUTRAL.items():
            value = data.pop(name, None)
            if value is not None and value not in neutral:
                raise UsageError(f"{name}={json.dumps(value)} is not supported by this teaching endpoint: leave it out")
    body = completions.read(ChatIn, data)
    if body.top_logprobs is not None and not 0 <= body.top_logprobs <= MAX_LOGPROBS:
        raise UsageError(f"top_logprobs must be between 0 and {MAX_LOGPROBS}, not {body.top_logprobs}")
    if body.top_logprobs and not body.logprobs:
        raise UsageError("top_logprobs needs logprobs: true")
    return body


class ChatCall(Call):
    """One chat request: `Call`'s loop and stop rules, a chat's pieces."""

    object = "chat.completion"

    def __init__(self, backend, chat: ChatIn, seconds: float = 120.0):
        completions.check_model(backend, chat)
        text = backend.chat_text(completions.messages_of(chat.messages))
        ids = backend.encode(text)  # the template's special tokens, written in the text, read as such
        asked = chat.max_tokens if chat.max_tokens is not None else chat.max_completion_tokens
        if asked is None:
            asked = max(1, min(MAX_NEW, backend.context_length - len(ids)))
        body = CompletionIn(
            prompt=ids or [],
            max_tokens=asked,
            logprobs=(chat.top_logprobs or 0) if chat.logprobs else None,
            **chat.model_dump(include={"temperature", "top_p", "top_k", "seed", "stream", "stop", "ignore_eos"}),
            stream_options=chat.stream_options,
        )
        completions.check(body)
        super().__init__(backend, body, seconds)
        self.id = "chatcmpl-" + self.id.removeprefix("cmpl-")

    def entry(self, token_id: int, logprob: float) -> dict:
        text = self.backend.token_text(token_id)
        return {"token": text, "logprob": completions.floor(logprob), "bytes": list(text.encode("utf-8"))}

    def logprobs(self, steps: list[Step]) -> dict | None:
        if self.body.logprobs is None:
            return None
        k = self.body.logprobs
        content = [
            {
                **self.entry(s.chosen.id, s.chosen.logprob),
                "top_logprobs": [self.entry(c.id, c.logprob) for c in s.top[:k]],
            }
            for s in steps
        ]
        return {"content": content}

    def choice(self, steps: list[Step], finish: str | None, first: bool) -> dict:
        return {
            "index": 0,
            "message": {"role": "assistant", "content": self.text(finish)},
            "logprobs": self.logprobs(steps),
            "finish_reason": finish,
            "stop_reason": self.stop_reason,
        }

    def chunks(self):
        self.object = "chat.completion.chunk"
        start = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        yield self.envelope([start])
        for record, finish in self.steps():
            piece = {
                "index": 0,
                "delta": {"content": self.text(finish)},
                "logprobs": self.logprobs([record]),
                "finish_reason": finish,
                "stop_reason": self.stop_reason if finish else None,
            }
            yield self.envelope([piece])
        if self.body.stream_options is not None and self.body.stream_options.include_usage:
            yield self.envelope([], usage=self.usage())


def whole(backend, data: Any) -> dict:
    """A chat request answered whole, as the route answers one without `stream`."""
    return ChatCall(backend, parse(data)).whole()
