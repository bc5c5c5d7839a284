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
import os
import stat
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..backends.server import Client, numbers
from ..errors import ServerError, UsageError, interrupt_held
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
        """A record read back (a `--save` file is outside input: every field is checked, and a
        record that breaks a rule raises ValueError saying which)."""
        if not isinstance(data, dict):
            raise ValueError(f"a {type(data).__name__}, not an object")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown field {sorted(unknown)[0][:40]!r}")
        chunks = data.get("chunks")
        if not isinstance(chunks, list) or not chunks:
            raise ValueError("chunks must be a non-empty list")
        out = []
        for chunk in chunks:
            ms, tokens, text = chunk if isinstance(chunk, list) and len(chunk) == 3 else (None, None, None)
            ms, tokens = numbers.number(ms, 0), numbers.count(tokens, MAX_TOKENS)
            if ms is None or tokens is None or not isinstance(text, bool):
                raise ValueError("each chunk must be [ms ≥ 0, tokens ≥ 0, true/false]")
            out.append(Chunk(float(ms), tokens, text))
        if not any(c.tokens for c in out):
            raise ValueError("no chunk carried a token")
        max_tokens = numbers.count(data.get("max_tokens"), MAX_TOKENS)
        prompt = data.get("prompt", "")
        ids = isinstance(prompt, list) and all(numbers.count(i, MAX_TOKENS) is not None for i in prompt)
        checks = {
            "max_tokens": max_tokens is not None and max_tokens >= 1,
            "prompt": isinstance(prompt, str) or ids,
            "chat": isinstance(data.get("chat", False), bool),
            "cold": isinstance(data.get("cold", False), bool),
            "group": isinstance(data.get("group", ""), str),
            "sent_s": numbers.number(data.get("sent_s", 0.0), -numbers.BIG) is not None,
            "done_ms": data.get("done_ms") is None or numbers.number(data["done_ms"], 0) is not None,
        }
        for key in ("usage", "server", "metrics"):
            checks[key] = data.get(key) is None or isinstance(data[key], dict)
        wrong = [key for key, ok in checks.items() if not ok]
        if wrong:
            raise ValueError(f"{wrong[0]} has the wrong type or an impossible value")
        return cls(
            max_tokens,
            prompt,
            data.get("chat", False),
            data.get("group", ""),
            float(data.get("sent_s", 0.0)),
            out,
            None if data.get("done_ms") is None else float(data["done_ms"]),
            *(numbers.figures(data.get(key)) for key in ("usage", "server", "metrics")),
            data.get("cold", False),
        )


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
            usage = numbers.figures(chunk.get("usage")) or {}  # the server's numbers, checked once, here
            reported = numbers.count(usage.get("completion_tokens"), MAX_TOKENS)
            choices = chunk.get("choices")
            if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                text, token = _piece(choices[0], chat)
                running = reported is not None and running in (None, True)
                tokens = reported - counted if running else int(token)
                result.chunks.append(Chunk(now, max(tokens, 0), bool(text)))
            if reported is not None:
                counted = reported
            if usage:
                result.usage = usage
            if isinstance(chunk.get("timings"), dict):
                result.server = numbers.figures(chunk["timings"])
            if isinstance(chunk.get("metrics"), dict):  # vLLM: rides on the last usage chunk
                result.metrics = numbers.figures(chunk["metrics"])
    result.done_ms = (time.perf_counter() - start) * 1000
    if not result.arrivals_ms:
        raise ServerError(f"{client.root} streamed no tokens for max_tokens={n}")
    if group and Recorder.active is not None:  # a counted request (a warm-up has no group)
        Recorder.active.add(result)
    return result


MAX_TOKENS = 1 << 31  # a count of tokens beyond this is not one


def _count(usage: dict | None, key: str) -> int | None:
    return numbers.count((usage or {}).get(key), MAX_TOKENS)


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
def open_new(path: str | Path, option: str = "--save"):
    """A file for a run's results, opened before the run, so a target that can't be written is
    found before anything is measured: a new regular file only (an existing one is never
    overwritten silently; a folder, a device such as /dev/full, a missing folder or a file
    system that refuses it is a one-line UsageError)."""
    if not Path(path).resolve().parent.is_dir():
        raise UsageError(f"{option} {path}: folder {Path(path).parent} does not exist")
    if os.path.lexists(path):
        what = "a folder" if os.path.isdir(path) else "a file" if os.path.isfile(path) else "not a regular file"
        raise UsageError(f"{option} {path}: already exists ({what}); give a new file name, or remove it first")
    try:
        out = open(path, "x", encoding="utf-8")  # noqa: SIM115 - the caller closes it
    except OSError as e:
        raise UsageError(
            f"{option} {path}: can't write it ({e.strerror or e}); give a file in a folder you can write"
        ) from None
    return out


class Recorder:
    """`--save` as the run goes: each counted request's record (one with a `group`) is written and
    flushed the moment it completes, so Ctrl+C, SIGTERM or a crash keeps every completed request.
    `with Recorder(path):` makes it the sink `stream_once` writes to; a write that fails late
    (a full disk) is kept in `failed` and ends the writing, never the run."""

    active: Recorder | None = None

    def __init__(self, path: str | Path):
        self.path, self.count, self.failed = str(path), 0, None
        self._out, self._closed = open_new(path), False
        self._lock = threading.Lock()

    def add(self, stream: Stream) -> None:
        # held: a Ctrl+C between the write and the count would leave a record the summary doesn't count
        with self._lock, interrupt_held():
            if self.failed is not None or self._closed:  # closed: the run has ended (interrupted); not written
                return
            try:
                self._out.write(json.dumps(stream.to_json()) + "\n")
                self._out.flush()
                self.count += 1
            except OSError as e:
                self.failed = e.strerror or str(e)

    def __enter__(self) -> Recorder:
        Recorder.active = self
        return self

    def __exit__(self, *exc) -> None:
        Recorder.active = None
        try:
            with self._lock:  # not while a worker thread writes a record
                self._closed = True
                self._out.close()
        except OSError as e:
            self.failed = self.failed or e.strerror or str(e)
        if not self.count and not self.failed:  # nothing completed: no empty file left to block a rerun
            Path(self.path).unlink(missing_ok=True)

    def said(self) -> str:
        """What became of the file, in one line."""
        if self.failed:
            return f"--save {self.path}: writing stopped after {self.count} requests ({self.failed}); the numbers above are the whole run's"
        return f"raw timestamps of {self.count} requests written to {self.path}"


MAX_LOAD = 256 << 20  # a million records of a long run is ~200 MB; a larger file is not one


def load(path: str | Path) -> list[Stream]:
    """The records `save` wrote; a file that isn't one is a one-line UsageError. Only a regular
    file of at most MAX_LOAD bytes is read (not /dev/zero, not a FIFO that would block)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"--load {path}: not a regular file; give a file that latency --save wrote")
        if info.st_size > MAX_LOAD:
            raise UsageError(
                f"--load {path}: {info.st_size >> 20} MB is more than a --save file holds (at most {MAX_LOAD >> 20} MB)"
            )
        with open(path, "rb") as f:
            raw = f.read(MAX_LOAD + 1)
    except OSError as e:
        raise UsageError(f"--load {path}: can't read it ({e.strerror or e})") from None
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UsageError(
            f"--load {path}: not UTF-8 text (byte {e.start}); give a file that latency --save wrote"
        ) from None
    streams = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            streams.append(Stream.from_json(json.loads(line)))
        except (ValueError, RecursionError) as e:
            why = "not JSON" if isinstance(e, (json.JSONDecodeError, RecursionError)) else str(e)
            raise UsageError(
                f"--load {path}: line {number} is not a record that latency --save wrote ({why})"
            ) from None
    if not streams:
        raise UsageError(f"--load {path}: no records in it; write them with tokenloop latency --url URL --save FILE")
    return streams


def bench(streams: list[Stream], duration_s: float, slos: dict | None = None) -> dict:
    """vLLM bench's metrics of these records (`bench_stats.bench`), tokens counted as the server said."""
    return bench_stats.bench([s.arrivals_ms for s in streams], duration_s, slos, [s.tokens for s in streams])


def span_s(streams: list[Stream]) -> float:
    """Requests sent together: from the first one sent to the last token of any (seconds)."""
    return max(s.sent_s + s.total_ms / 1000 for s in streams) - min(s.sent_s for s in streams)
