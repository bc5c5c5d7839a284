"""The JSON that OpenAI-compatible servers answer, turned into one form: (id, text, logprob).

Pure functions, no HTTP. Two logprobs shapes exist in the wild:

- **content**: ``{"content": [{"id", "token", "bytes", "logprob", "top_logprobs": [...]}]}``, one
  item per generated token. llama.cpp's server answers it (with token ids) on ``/completion``
  (as ``completion_probabilities``) and on ``/v1/completions``; every chat endpoint uses it.
- **legacy**: ``{"tokens": [...], "token_logprobs": [...], "top_logprobs": [{text: logprob}]}``,
  the original ``/v1/completions`` shape, used by vLLM, SGLang and llama-cpp-python. It is keyed
  by token *string*, so two tokens that print alike collide in one key (vLLM #44319); vLLM's
  ``return_tokens_as_token_ids`` makes the keys ``"token_id:123"`` instead.

Values: vLLM writes -inf as -9999.0 (JSON has no infinity); some servers send null or NaN. The
sampled token comes first in vLLM's dict, so entries are re-sorted here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from . import numbers

# vLLM clamps -inf to this for JSON; anything at or below it means "impossible".
VLLM_NEG_INF = -9999.0

TOKEN_ID_KEY = re.compile(r"^token_id:(-?\d+)$")
CAP_MESSAGE = re.compile(r"max allowed:?\s*(\d+)", re.IGNORECASE)
CONTEXT_MESSAGE = re.compile(r"context (?:window|length)[^\d]{0,40}(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Entry:
    """One candidate as the server reported it."""

    id: int | None  # None when the server gave only a token string
    text: str  # the server's token string: may be "", "\ufffd", "bytes:...", "token_id:N"
    logprob: float  # -inf when the server says impossible


@dataclass(frozen=True)
class Position:
    """One generated position: the token the server produced and the candidates it reported."""

    chosen: Entry | None  # the server's own pick (None if it did not say)
    top: list[Entry]  # most likely first, one entry per id (or per text when there are no ids)
    missing: int = 0  # entries whose logprob was null or NaN, left out


MAX_ID = 1 << 31  # token ids are int32 everywhere; a larger number is not a token id


def logprob_value(value: Any) -> float | None:
    """A logprob as a float: -9999 and below (vLLM's -inf) become -inf; null, NaN, or anything
    that is not a number become None. (Everything a server sends is untrusted.)"""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return -math.inf if value < 0 else 0.0
    if math.isnan(number):
        return None
    return -math.inf if number <= VLLM_NEG_INF else min(number, 0.0)


def clean_text(text: str) -> str:
    """A server's string, safe to print and to write as UTF-8: lone surrogates become U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def parse_key(key: str) -> tuple[int | None, str]:
    """A legacy-shape key: ("token_id:123") -> (123, key); a plain token string -> (None, key)."""
    key = clean_text(key)
    match = TOKEN_ID_KEY.match(key)
    token_id = int(match.group(1)) if match and len(match.group(1)) < 12 else None
    return (token_id if token_id is not None and token_id < MAX_ID else None, key)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and numbers.count(value, MAX_ID - 1) is not None else None


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def content_entry(item: dict) -> Entry | None:
    """An item of the content shape; None when its logprob is missing."""
    if not isinstance(item, dict):
        return None
    logprob = logprob_value(item.get("logprob"))
    if logprob is None:
        return None
    text = clean_text(item["token"]) if isinstance(item.get("token"), str) else ""
    token_id = _int_or_none(item.get("id"))
    if token_id is None and text:
        token_id = parse_key(text)[0]
    return Entry(token_id, text, logprob)


def ranked(entries: list[Entry]) -> list[Entry]:
    """Most likely first, keeping the first entry of each id (or text, when ids are unknown)."""
    seen: set = set()
    out = []
    for entry in sorted(entries, key=lambda e: -e.logprob):
        key = entry.id if entry.id is not None else ("text", entry.text)
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return out


def _content_positions(items: list) -> list[Position]:
    out = []
    for item in _list(items):
        tops = item.get("top_logprobs") if isinstance(item, dict) else None
        entries = [content_entry(t) for t in _list(tops)]
        kept = [e for e in entries if e is not None]
        out.append(Position(content_entry(item), ranked(kept), len(entries) - len(kept)))
    return out


def _legacy_positions(logprobs: dict) -> list[Position]:
    tokens = _list(logprobs.get("tokens"))
    chosen_lps = _list(logprobs.get("token_logprobs"))
    tops = _list(logprobs.get("top_logprobs"))
    out = []
    for i in range(max(len(tokens), len(tops))):
        chosen = None
        if i < len(tokens) and isinstance(tokens[i], str):
            logprob = logprob_value(chosen_lps[i] if i < len(chosen_lps) else None)
            if logprob is not None:
                chosen = Entry(*parse_key(tokens[i]), logprob)
        table = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        entries, missing = [], 0
        for key, value in table.items():
            logprob = logprob_value(value)
            if logprob is None:
                missing += 1
                continue
            entries.append(Entry(*parse_key(key), logprob))
        out.append(Position(chosen, ranked(entries), missing))
    return out


def shape_of(logprobs: Any) -> str:
    """Which shape a `logprobs` object has: "content", "legacy" or "none"."""
    if isinstance(logprobs, list):
        return "content"  # llama.cpp's completion_probabilities is the bare list
    if not isinstance(logprobs, dict):
        return "none"
    if isinstance(logprobs.get("content"), list):
        return "content"
    if "top_logprobs" in logprobs or "tokens" in logprobs:
        return "legacy"
    return "none"


def positions(logprobs: Any) -> list[Position]:
    """Every generated position in a `logprobs` object of either shape ([] when there is none)."""
    shape = shape_of(logprobs)
    if shape == "content":
        return _content_positions(logprobs if isinstance(logprobs, list) else logprobs["content"])
    if shape == "legacy":
        return _legacy_positions(logprobs)
    return []


def keyed_by(position: Position) -> str:
    """How a position's candidates are keyed: "id", "token_id:N" strings, or token "text"."""
    if not position.top:
        return "nothing"
    if all(e.id is not None for e in position.top):
        return "token_id:N" if all(TOKEN_ID_KEY.match(e.text) for e in position.top) else "id"
    return "text"


def error_message(status: int, body: Any, text: str = "") -> str:
    """The server's own words from an error body (vLLM, SGLang, llama.cpp, FastAPI 422 shapes)."""
    message = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        message = message or body.get("message")
        detail = body.get("detail")
        if message is None and isinstance(detail, list) and detail and isinstance(detail[0], dict):
            loc = detail[0].get("loc")
            where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
            message = f"{detail[0].get('msg', 'invalid request')} ({where})"
        elif message is None and isinstance(detail, str):
            message = detail
    message = message if isinstance(message, str) and message.strip() else (text or f"HTTP {status}")
    return clean_text(" ".join(message.split())[:300])


def logprobs_cap(message: str) -> int | None:
    """The cap in vLLM's 400 "Requested sample logprobs of N, which is greater than max allowed: 20"."""
    if "logprob" not in message.lower():
        return None
    match = CAP_MESSAGE.search(message)
    return numbers.count(match.group(1), 1 << 20, text=True) if match else None


def context_limit(message: str) -> int | None:
    """The context length named in a server's "prompt too long" error, if it names one."""
    match = CONTEXT_MESSAGE.search(message)
    return numbers.count(match.group(1), 1 << 30, text=True) if match else None


def is_context_error(message: str) -> bool:
    lowered = message.lower()
    return "context" in lowered and any(w in lowered for w in ("exceed", "longer", "too long", "maximum", "larger"))


def _count(value: Any) -> int | None:
    return numbers.count(value, MAX_ID - 1)


def _ms(value: Any) -> float | None:
    found = numbers.number(value, 0, 1e9)  # NaN, 1e400 and "12" fail
    return None if found is None else float(found)


def server_numbers(body: Any) -> dict:
    """Timings and cache figures a response reports, under names that go into a Step's JSON
    (only sane numbers: a count in int32, milliseconds finite and not negative)."""
    out: dict = {}
    if not isinstance(body, dict):
        return out
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    if _count(details.get("cached_tokens")) is not None:
        out["cached_tokens"] = _count(details["cached_tokens"])
    if _count(usage.get("prompt_tokens")) is not None:
        out["prompt_tokens"] = _count(usage["prompt_tokens"])
    timings = body.get("timings")
    if isinstance(timings, dict):  # llama.cpp
        prompt_ms, predicted_ms = _ms(timings.get("prompt_ms")), _ms(timings.get("predicted_ms"))
        if prompt_ms is not None and predicted_ms is not None:
            out["server_ms"] = prompt_ms + predicted_ms
            out["server_prompt_ms"] = prompt_ms
        if _count(timings.get("cache_n")) is not None:
            out["cached_tokens"] = _count(timings["cache_n"])
        if _count(timings.get("prompt_n")) is not None:
            out["server_prompt_tokens"] = _count(timings["prompt_n"])
    return out
