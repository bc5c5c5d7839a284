"""The real call, answered here: an OpenAI-compatible `/v1/completions` computed by the model in
this process through the project's one loop (`loop.generate`) and sampler.

A teaching endpoint on 127.0.0.1, not a serving engine: one forward pass at a time (the model's
lock), no batching, no paging. It exists so that the lesson's "See it raw" curl is the call an
engineer sends to vLLM, and so `tokenloop next --url http://127.0.0.1:8765/v1` runs against the
lesson app itself.

The answer has vLLM's shape (`vllm/entrypoints/openai/completion/serving.py`):

    {"id": "cmpl-…", "object": "text_completion", "created": 1767225600, "model": "…",
     "choices": [{"index": 0, "text": "…", "finish_reason": "stop" | "length", "stop_reason": null,
                  "logprobs": {"tokens": ["…"], "token_logprobs": [-0.4],
                               "top_logprobs": [{"…": -0.4, …}], "text_offset": [0]}}],
     "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}}

- `top_logprobs` at a position holds the picked token first, then the `logprobs` most likely of
  the raw distribution (k entries, or k + 1 when the pick is not among them); the numbers are the
  raw distribution's (vLLM's default `--logprobs-mode raw_logprobs`), before temperature and top-p.
- `text_offset` adds up the lengths of the `tokens` strings before each one.
- vLLM's `return_tokens_as_token_ids` names tokens "token_id:N"; `return_token_ids` adds the ids.
- streamed: a `data: {chunk}` per token (its text, its logprobs), the last one with its
  `finish_reason`; with `stream_options.include_usage` a chunk of usage and no choices; then
  `data: [DONE]`.
- the text keeps special tokens except the end token that stopped the run (vLLM drops them all).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..cost import tokens
from ..errors import TokenloopError, UsageError
from ..loop import generate, given_ids, prompt_ids
from ..records import Done, Step
from ..sampling import Sampler
from .schemas import SURROGATE, lone_surrogate

MAX_NEW = 512  # most tokens one request may ask for: a CPU makes a few dozen a second
MAX_LOGPROBS = 20  # vLLM's default --max-logprobs
NOTE = (
    "tokenloop's teaching endpoint on 127.0.0.1: the embedded model through the lesson's own loop, "
    "one forward pass at a time; not a serving engine"
)
# OpenAI fields this endpoint has no use for: accepted only at the value that changes nothing.
NEUTRAL: dict[str, tuple] = {
    "frequency_penalty": (0, 0.0),
    "presence_penalty": (0, 0.0),
    "repetition_penalty": (1, 1.0),
    "min_p": (0, 0.0),
    "best_of": (1,),
    "n": (1,),
    "echo": (False,),
    "logit_bias": ({},),
    "suffix": ("",),
}


class UnknownModel(UsageError):
    """A request names a model this app does not serve (HTTP 404, as vLLM answers)."""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class CompletionIn(BaseModel):
    """The request, as vLLM reads it (the fields this endpoint uses)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    prompt: str | list[int]
    max_tokens: int = 16
    logprobs: int | None = None
    temperature: float = 1.0  # OpenAI's and vLLM's default: sampled
    top_p: float = 1.0
    top_k: int = -1  # vLLM's: -1 (or 0) is off
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    return_tokens_as_token_ids: bool = False
    return_token_ids: bool = False
    ignore_eos: bool = False  # vLLM's: go on past the end token, to exactly max_tokens (tokenloop latency)
    stop: str | list[str] | None = None  # end the answer before the first of these texts
    user: str | None = None


class TokenizeIn(BaseModel):
    """vLLM's /tokenize: a text (`prompt`), or a conversation (`messages`) rendered through the
    model's chat template first, ending with the assistant's turn marker (`add_generation_prompt`)."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    prompt: str | None = None
    messages: list[dict] | None = None
    add_generation_prompt: bool = True
    add_special_tokens: bool = True
    return_token_strs: bool = False


class DetokenizeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    tokens: list[int]


def parse(data: Any) -> CompletionIn:
    """The completion request checked, or a UsageError whose one line says what to change."""
    if isinstance(data, dict):
        data = dict(data)
        for name, neutral in NEUTRAL.items():
            value = data.pop(name, None)
            if value is not None and value not in neutral:
                raise UsageError(f"{name}={json.dumps(value)} is not supported by this teaching endpoint: leave it out")
    body = read(CompletionIn, data)
    check(body)
    return body


def read(model: type[BaseModel], data: Any):
    """A request body as `model`, or one line naming the first field that is wrong."""
    if not isinstance(data, dict):
        raise UsageError('the body must be a JSON object, e.g. {"prompt": "Kubernetes pods are", "max_tokens": 1}')
    if lone_surrogate(data):  # valid JSON, not valid Unicode: no tokenizer can take it
        raise UsageError(SURROGATE)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        if where.startswith("prompt"):
            raise UsageError("prompt must be text or a list of token ids (one prompt per request)") from None
        if first.get("type") == "extra_forbidden":
            raise UsageError(f"{where} is not a field this teaching endpoint knows: leave it out") from None
        raise UsageError(f"{where}: {first.get('msg', 'invalid')}") from None


def check(body: CompletionIn) -> None:
    """Values out of range, refused as vLLM refuses them (the logprobs wording is vLLM's own)."""
    if isinstance(body.prompt, str) and not body.prompt.strip() or body.prompt == []:
        raise UsageError("prompt is empty: send some text or a list of token ids")
    if not 1 <= body.max_tokens <= MAX_NEW:
        raise UsageError(f"max_tokens must be between 1 and {MAX_NEW} on this teaching endpoint, not {body.max_tokens}")
    if body.logprobs is not None and body.logprobs > MAX_LOGPROBS:
        raise UsageError(
            f"Requested sample logprobs of {body.logprobs}, which is greater than max allowed: {MAX_LOGPROBS}"
            f" (ask for {MAX_LOGPROBS} or fewer)"
        )
    if body.logprobs is not None and body.logprobs < 0:
        raise UsageError(f"logprobs must be between 0 and {MAX_LOGPROBS}, not {body.logprobs}")
    if not 0 <= body.temperature <= 5:
        raise UsageError(f"temperature must be between 0 (greedy) and 5, not {body.temperature}")
    if not 0 < body.top_p <= 1:
        raise UsageError(f"top_p must be above 0 and at most 1, not {body.top_p}")
    if body.top_k < -1:
        raise UsageError(f"top_k must be -1 or 0 (off) or a positive count, not {body.top_k}")
    if body.seed is not None and not 0 <= body.seed < 2**63:
        raise UsageError(f"seed must be between 0 and 2**63 - 1, not {body.seed}")
    if any(not s for s in stops(body)):
        raise UsageError("stop must be a non-empty text or a list of them")


def stops(body) -> list[str]:
    """The request's stop texts, as a list."""
    return [body.stop] if isinstance(body.stop, str) else list(body.stop or [])


def check_model(backend, body: CompletionIn | TokenizeIn | DetokenizeIn) -> None:
    if body.model is not None and body.model != backend.model:
        raise UnknownModel(
            f"The model `{body.model}` does not exist: this endpoint serves `{backend.model}` (GET /v1/models)"
        )


def sampler_of(body: CompletionIn) -> Sampler:
    if body.temperature == 0:
        return Sampler()  # greedy: top-k and top-p change nothing
    top_k = body.top_k if body.top_k > 0 else None
    return Sampler(body.temperature, top_k, body.top_p if body.top_p < 1 else None)


def ids_of(backend, body: CompletionIn) -> list[int]:
    """The prompt's token ids: tokenized here, or given; checked against the vocabulary and context."""
    if isinstance(body.prompt, str):
        ids = prompt_ids(backend, body.prompt)
    else:
        ids = given_ids(backend, body.prompt)
    tokens.room(backend, len(ids), body.max_tokens)
    return ids


def tokenize(backend, body: TokenizeIn) -> dict:
    """vLLM's /tokenize answer: the ids, their count, the context."""
    check_model(backend, body)
    if (body.prompt is None) == (body.messages is None):
        raise UsageError('send either "prompt" (a text) or "messages" (a conversation), not both or neither')
    if body.messages is not None:
        ids = backend.encode(backend.chat_text(messages_of(body.messages), body.add_generation_prompt))
    else:
        ids = backend.encode(body.prompt)
    strs = [backend.token_text(i) for i in ids] if body.return_token_strs else None
    return {"count": len(ids), "max_model_len": backend.context_length, "tokens": ids, "token_strs": strs}


def messages_of(messages: list) -> list[dict]:
    """A conversation checked: each message a role and a text content."""
    if not messages:
        raise UsageError('messages is empty: send at least one {"role": "user", "content": "..."}')
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise UsageError('each message must be {"role": "...", "content": "text"} on this teaching endpoint')
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def detokenize(backend, body: DetokenizeIn) -> dict:
    """vLLM's /detokenize answer: the text of the ids."""
    check_model(backend, body)
    return {"prompt": backend.decode(given_ids(backend, body.tokens))}


def models(backend, created: int) -> dict:
    """GET /v1/models: the one model this app serves."""
    card = {
        "id": backend.model,
        "object": "model",
        "created": created,
        "owned_by": "tokenloop",
        "root": backend.model,
        "parent": None,
        "max_model_len": backend.context_length,
        "permission": [],
        "note": NOTE,
    }
    return {"object": "list", "data": [card]}


# --- the answer ---------------------------------------------------------------------------------
class Overtime(TokenloopError):
    """A request ran past the endpoint's time: the model is free again for the next one."""


class Call:
    """One request: the loop's records as they come, turned into vLLM's pieces. The loop asks
    `going` before every forward pass (a long prompt goes in pieces): it stops when the client
    has left (`gone`, set by the route) or after `seconds`, so no request holds the model longer."""

    object = "text_completion"

    def __init__(self, backend, body: CompletionIn, seconds: float = 120.0, clock=time.monotonic):
        self.backend, self.body = backend, body
        self.gone, self.seconds, self.clock = threading.Event(), seconds, clock
        self.deadline = clock() + seconds
        self.ids = ids_of(backend, body)
        self.stops, self.cut, self.stop_reason = stops(body), None, None  # the stop texts; where one matched
        self.id, self.created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        self.new: list[int] = []
        self.offset = 0  # text_offset of the next token string
        self.sent = 0  # characters of text already streamed
        self.stop_ids = frozenset() if body.ignore_eos else backend.eos_ids

    def records(self) -> Iterator[Step | Done]:
        k = self.body.logprobs or 0
        return generate(
            self.backend,
            self.ids,
            self.body.max_tokens,
            sampler_of(self.body),
            show=max(k, 1),
            seed=self.body.seed,
            stop_ids=self.stop_ids,
            go_on=self.going,
        )

    def going(self) -> bool:
        return not self.gone.is_set() and self.clock() < self.deadline

    def token(self, token_id: int) -> str:
        return f"token_id:{token_id}" if self.body.return_tokens_as_token_ids else self.backend.token_text(token_id)

    def logprobs(self, steps: list[Step]) -> dict | None:
        """The legacy logprobs object for these steps."""
        if self.body.logprobs is None:
            return None
        out: dict[str, list] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for s in steps:
            top = {self.token(s.chosen.id): floor(s.chosen.logprob)}  # the pick first, as vLLM writes it
            top.update({self.token(c.id): floor(c.logprob) for c in s.top[: self.body.logprobs]})
            out["tokens"].append(self.token(s.chosen.id))
            out["token_logprobs"].append(floor(s.chosen.logprob))
            out["top_logprobs"].append(top)
            out["text_offset"].append(self.offset)
            self.offset += len(out["tokens"][-1])
        return out

    def finish(self, record: Step) -> str | None:
        """Why the run ends after this token, if it does: an end token or max_tokens (the loop stops
        on these too; the context can't end it first: `ids_of` refused a request that would outgrow
        it), or a stop text in the answer, where this call ends the loop itself."""
        if record.chosen.id in self.stop_ids:
            return "stop"
        if self.stops:
            text = self.backend.decode(self.new)
            found = [(text.find(s), s) for s in self.stops if s in text]
            if found:
                self.cut, self.stop_reason = min(found)
                return "stop"
        return "length" if len(self.new) == self.body.max_tokens else None

    def text(self, finish: str | None) -> str:
        """The text not yet sent: held back while it ends inside a character or with the start of
        a stop text, all of it (up to a matched stop text) at the end."""
        ended = finish == "stop" and self.cut is None  # the end token is not part of the text
        text = self.backend.decode(self.new[:-1] if ended else self.new)
        if self.cut is not None:
            text = text[: self.cut]
        if finish is None:
            if text.endswith("\ufffd"):
                return ""
            held = max((n for s in self.stops for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
            text = text[: len(text) - held]
        piece, self.sent = text[self.sent :], max(self.sent, len(text))
        return piece

    def choice(self, steps: list[Step], finish: str | None, first: bool) -> dict:
        choice = {
            "index": 0,
            "text": self.text(finish),
            "logprobs": self.logprobs(steps),
            "finish_reason": finish,
            "stop_reason": self.stop_reason,
        }
        if self.body.return_token_ids:
            choice["token_ids"] = [s.chosen.id for s in steps]
            if first:
                choice["prompt_token_ids"] = self.ids
        return choice

    def usage(self) -> dict:
        n, m = len(self.ids), len(self.new)
        return {"prompt_tokens": n, "completion_tokens": m, "total_tokens": n + m}

    def envelope(self, choices: list[dict], **more) -> dict:
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.backend.model,
            "choices": choices,
            **more,
        }

    def steps(self) -> Iterator[tuple[Step, str | None]]:
        """The loop's steps, each with the reason the run ends there (None while it goes on)."""
        for record in self.records():
            if isinstance(record, Done):
                if record.stop == "stopped":
                    raise Overtime(
                        f"the request ran past this teaching endpoint's {self.seconds:g} s (after {len(self.new)} of "
                        f"{self.body.max_tokens} tokens; a long prompt is slow on a CPU): send a shorter prompt or "
                        "fewer max_tokens"
                    )
                return
            self.new.append(record.chosen.id)
            finish = self.finish(record)
            yield record, finish
            if finish is not None:  # a stop text: the loop would go on, the answer does not
                return

    def whole(self) -> dict:
        """The answer to a request without `stream`."""
        made = list(self.steps())
        finish = made[-1][1] if made else "length"
        return self.envelope([self.choice([s for s, _ in made], finish, True)], usage=self.usage())

    def chunks(self) -> Iterator[dict]:
        """The answer to a request with `stream`: a chunk per token as the loop makes it."""
        for number, (record, finish) in enumerate(self.steps()):
            yield self.envelope([self.choice([record], finish, number == 0)])
        if self.body.stream_options is not None and self.body.stream_options.include_usage:
            yield self.envelope([], usage=self.usage())


def floor(logprob: float) -> float:
    """JSON has no -inf: vLLM writes it -9999.0."""
    return max(logprob, -9999.0)
