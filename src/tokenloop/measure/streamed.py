"""One streamed request as the client saw it: the raw timestamps every latency number comes from.

A `Stream` keeps what was asked (prompt, max_tokens, completion or chat), when it was sent on the
run's clock, every chunk that carried a choice (its arrival in ms after sending, how many tokens it
held, whether it held any text), when the stream closed, the server's token counts (`usage`) and,
from llama.cpp, its own `timings`, from vLLM with `--enable-per-request-metrics` its own `metrics`
(queue, scheduled-to-first-token, decode time, mean ITL). `--save` writes these as JSON lines and `--load` reads them back:
every metric (ours, vLLM's bench, GuideLLM's, AIPerf's) is computed from them alone.

Tokens are counted from the server, not from chunks, where it says: a chunk may hold several tokens
(speculative decoding, a server that batches its stream) and a chat stream opens with a chunk that
holds only the role. We ask for `stream_options: {include_usage, continuous_usage_stats}`; vLLM then
puts the running `completion_tokens` in every chunk, and a chunk's tokens are the step from the one
before. A server without it (llama.cpp) gets one token per chunk that carries text, or an empty
piece of a longer character before the end; the final `usage`, where sent, is the total.

The two wire shapes (`/v1/completions`, then `/v1/chat/completions`; vLLM 0.32 as sent):

    data: {"choices":[{"index":0,"text":" so","finish_reason":null}],"usage":{"completion_tokens":2,...}}
    data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3,...}}      <- usage only
    data: {"choices":[{"delta":{"role":"assistant","content":""},...}],"usage":{"completion_tokens":0}}
    data: {"choices":[{"delta":{"content":"Hello"},...}],"usage":{"completion_tokens":1,...}}
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..backends.server import Client
from ..errors import ServerError, UsageError
from . import bench_stats

EXTRA = {"ignore_eos": True, "temperature": 0}  # exactly max_tokens tokens (llama.cpp and vLLM know ignore_eos)
USAGE = {"include_usage": True, "continuous_usage_stats": True}


@dataclass
class Chunk:
    ms: float  # arrival, after the request was sent
    tokens: int  # tokens it carried (0: a role-only chunk, or the closing one)
    text: bool  # it carried generated text


@dataclass
class Stream:
    """One streamed request's raw record (the schema of `--save`'s JSON lines)."""

    max_tokens: int
    prompt: str | list[int] = ""  # text, or token ids
    chat: bool = False
    group: str = ""  # which part of a run it belongs to, e.g. "length 16" or "concurrency 4"
    sent_s: float = 0.0  # when it was sent, seconds on the run's clock
    chunks: list[Chunk] = field(default_factory=list)
    done_ms: float | None = None  # when the stream closed ([DONE])
    usage: dict | None = None  # the server's last `usage` (prompt, completion, cached tokens), when sent
    server: dict | None = None  # llama.cpp's own `timings`, when it sends them
    metrics: dict | None = None  # vLLM's own account of the request (--enable-per-request-metrics), when sent
    cold: bool = False  # sent with a fresh cache_salt (or llama.cpp's cache_prompt: false): no cached prefix

    @property
    def prompt_tokens(self) -> int | None:
        return _count(self.usage, "prompt_tokens")

    @property
    def completion_tokens(self) -> int | None:
        return _count(self.usage, "completion_tokens")

    @property
    def cached_tokens(self) -> int | None:
        """Prompt tokens the server found in its prefix cache (vLLM's usage.prompt_tokens_details with
        --enable-prompt-tokens-details; llama.cpp's timings.cache_n)."""
        details = (self.usage or {}).get("prompt_tokens_details")
        found = _count(details if isinstance(details, dict) else None, "cached_tokens")
        return found if found is not None else _count(self.server, "cache_n")

    @property
    def arrivals_ms(self) -> list[float]:
        """When each chunk that carried tokens arrived."""
        return [c.ms for c in self.chunks if c.tokens]

    @property
    def tokens(self) -> int:
        """Output tokens: the server's count where it gave one, else the chunks' sum."""
        return self.completion_tokens if self.completion_tokens is not None else sum(c.tokens for c in self.chunks)

    @property
    def ttft_ms(self) -> float:
        return self.arrivals_ms[0]

    @property
    def total_ms(self) -> float:
        return self.arrivals_ms[-1]

    @property
    def itl_ms(self) -> float | None:
        tokens = self.tokens
        return (self.total_ms - self.ttft_ms) / (tokens - 1) if tokens > 1 else None

    def to_json(self) -> dict:
        data = asdict(self)
        data["chunks"] = [[c.ms, c.tokens, c.text] for c in self.chunks]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Stream:
        data = dict(data)
        chunks = [Chunk(float(ms), int(tokens), bool(text)) for ms, tokens, text in data.pop("chunks")]
        return cls(**data, chunks=chunks)


def stream_once(
    client: Client,
    model: str,
    prompt: str | list[int],
    n: int,
    extra: dict | None = None,
    *,
    chat: bool = False,
    group: str = "",
    clock: float | None = None,
) -> Stream:
    """One streamed request for n tokens, timing every chunk from the moment it is sent. `extra`:
    more request fields (a cache salt, other `stream_options`); `clock`: the run's start
    (time.perf_counter()), so requests sent together can be placed on one line."""
    path, body = _request(model, prompt, n, chat)
    body.update(extra or {})
    result = Stream(n, prompt, chat, group, cold="cache_salt" in body or body.get("cache_prompt") is False)
    start = time.perf_counter()
    result.sent_s = start - clock if clock is not None else 0.0
    counted, running = 0, None  # completion tokens reported so far; whether every chunk reports them
    with client.events(path, body) as chunks:
        for chunk in chunks:
            now = (time.perf_counter() - start) * 1000
            usage = chunk.get("usage") if isinstance(chunk.get("usage"), dict) else {}
            reported = usage.get("completion_tokens")
            choices = chunk.get("choices")
            if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                text, token = _piece(choices[0], chat)
                running = isinstance(reported, int) and running in (None, True)
                tokens = reported - counted if running else int(token)
                result.chunks.append(Chunk(now, max(tokens, 0), bool(text)))
            if isinstance(reported, int):
                counted = reported
            if usage:
                result.usage = usage
            if isinstance(chunk.get("timings"), dict):
                result.server = chunk["timings"]
            if isinstance(chunk.get("metrics"), dict):  # vLLM: rides on the last usage chunk
                result.metrics = chunk["metrics"]
    result.done_ms = (time.perf_counter() - start) * 1000
    if not result.arrivals_ms:
        raise ServerError(f"{client.root} streamed no tokens for max_tokens={n}")
    return result


def _count(usage: dict | None, key: str) -> int | None:
    value = (usage or {}).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _request(model: str, prompt: str | list[int], n: int, chat: bool) -> tuple[str, dict]:
    body = {"model": model, "max_tokens": n, "stream": True, "stream_options": USAGE, **EXTRA}
    if chat:
        return "/v1/chat/completions", {**body, "messages": [{"role": "user", "content": prompt}]}
    return "/v1/completions", {**body, "prompt": prompt}


def _piece(choice: dict, chat: bool) -> tuple[str, bool]:
    """(the text a choice carries, whether it carries a token when the server doesn't count them)."""
    part = choice.get("delta") if chat else choice
    part = part if isinstance(part, dict) else {}
    key = "content" if chat else "text"
    text = part.get(key) if isinstance(part.get(key), str) else ""
    role_only = chat and "role" in part and not text
    # a token: some text, or an empty piece of a longer character before the end
    return text, bool(text) or (not role_only and choice.get("finish_reason") is None and key in part)


# --- JSON lines --------------------------------------------------------------------------------
def save(path: str | Path, streams: list[Stream]) -> None:
    with open(path, "w") as out:
        for s in streams:
            out.write(json.dumps(s.to_json()) + "\n")


def load(path: str | Path) -> list[Stream]:
    """The records `save` wrote; a file that isn't one is a one-line UsageError."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise UsageError(f"--load {path}: can't read it ({e.strerror or e})") from None
    streams = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            streams.append(Stream.from_json(json.loads(line)))
        except (ValueError, TypeError, KeyError, AttributeError):
            raise UsageError(
                f"--load {path}: line {number} is not a record that latency --save wrote (JSON lines of streams)"
            ) from None
    if not streams:
        raise UsageError(f"--load {path}: no records in it; write them with tokenloop latency --url URL --save FILE")
    return streams


def check_save(path: str | None) -> None:
    if path and not Path(path).resolve().parent.is_dir():
        raise UsageError(f"--save {path}: folder {Path(path).parent} does not exist")


def bench(streams: list[Stream], duration_s: float, slos: dict | None = None) -> dict:
    """vLLM bench's metrics of these records (`bench_stats.bench`), tokens counted as the server said."""
    return bench_stats.bench([s.arrivals_ms for s in streams], duration_s, slos, [s.tokens for s in streams])


def span_s(streams: list[Stream]) -> float:
    """Requests sent together: from the first one sent to the last token of any (seconds)."""
    return max(s.sent_s + s.total_ms / 1000 for s in streams) - min(s.sent_s for s in streams)
