"""What a server is and what it can do for the loop: found once when the backend opens
(`discover`), and tried live by `tokenloop probe` (`probe`)."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

from ...errors import ServerError, UsageError
from ...sampling import Sampler
from . import dialects, metrics, numbers, wire
from .client import Client, Refused

MAX_CONTEXT = 1 << 30  # a context a server claims beyond this is not one it has
PROBE_K = 100  # how many logprobs `probe` asks for to find the server's cap


@dataclass
class Capabilities:
    """What a server can do, found once when the backend opens (and by `tokenloop probe`)."""

    url: str
    kind: str  # which server: its dialect's name in dialects.DIALECTS ("vLLM", "llama.cpp", ...; a JSON field of probe)
    model: str
    models: list[str]
    context_length: int | None
    tokenize: str | None
    detokenize: str | None
    prompt_ids: bool
    endpoint: str
    distribution: str
    version: str | None = None
    eos_ids: list[int] = field(default_factory=list)
    max_logprobs: int | None = None  # the cap the server enforces, once known
    checks: dict[str, Any] = field(default_factory=dict)  # what `probe` measured live

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def discover(client: Client, wanted: str | None) -> Capabilities:
    """The served model, the server (its dialect), its context and tokenizer endpoints."""
    listing = client.call("GET", "/v1/models")
    data = listing.get("data") if isinstance(listing, dict) else None
    entries = (
        [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)] if isinstance(data, list) else []
    )
    if not entries:
        raise ServerError(f"{client.root}/v1/models lists no models: is {client.source} an OpenAI-compatible server?")
    models = [m["id"] for m in entries]
    if wanted is not None and wanted not in models:
        raise UsageError(f"--server-model {wanted}: the server has no such model; it serves: {', '.join(models)[:300]}")
    entry = entries[models.index(wanted or models[0])]
    dialect = dialects.by_owner(entry.get("owned_by")) or sniff(client)
    context = entry.get("max_model_len")
    context = numbers.count(context, MAX_CONTEXT) or None
    caps = Capabilities(
        client.root,
        dialect.name,
        entry["id"],
        models,
        context,
        dialect.tokenize,
        dialect.detokenize,
        dialect.takes_ids,
        dialect.endpoint,
        dialect.distribution,
    )
    if dialect is dialects.LLAMA_CPP:
        props = client.quiet("GET", "/props")
        props = props if isinstance(props, dict) else {}
        settings = props.get("default_generation_settings")
        n_ctx = (settings.get("n_ctx") if isinstance(settings, dict) else None) or props.get("n_ctx")
        caps.context_length = numbers.count(n_ctx, MAX_CONTEXT) or caps.context_length
        caps.version = props.get("build_info") if isinstance(props.get("build_info"), str) else None
        if isinstance(props.get("eos_token"), str):
            caps.eos_ids = special_ids(client, dialect, caps.model, props["eos_token"])
    elif dialect is dialects.VLLM:
        version = client.quiet("GET", "/version")
        caps.version = (
            version.get("version") if isinstance(version, dict) and isinstance(version.get("version"), str) else None
        )
    if (
        dialect is dialects.OTHER
        and client.quiet("POST", "/tokenize", dialects.tokenize_body(dialect, caps.model, "a")) is None
    ):
        caps.tokenize = caps.detokenize = None
    if caps.tokenize is None:
        caps.prompt_ids = False
    return caps


def sniff(client: Client) -> dialects.Dialect:
    """Servers that /v1/models does not name: ask the endpoints only one dialect has."""
    props = client.quiet("GET", "/props")
    if isinstance(props, dict) and "default_generation_settings" in props:
        return dialects.LLAMA_CPP
    if isinstance(client.quiet("GET", "/get_model_info"), dict):
        return dialects.SGLANG
    if isinstance(client.quiet("GET", "/api/version"), dict):
        return dialects.OLLAMA
    version = client.quiet("GET", "/version")
    if isinstance(version, dict) and "version" in version:
        return dialects.VLLM
    return dialects.OTHER


def special_ids(client: Client, dialect: dialects.Dialect, model: str, text: str) -> list[int]:
    """The id of a special token's text, if the server's tokenizer makes it one token."""
    answer = client.quiet("POST", dialect.tokenize, dialects.tokenize_body(dialect, model, text, special=False))
    tokens = answer.get("tokens") if isinstance(answer, dict) else None
    ok = (
        isinstance(tokens, list)
        and len(tokens) == 1
        and isinstance(tokens[0], int)
        and numbers.count(tokens[0], wire.MAX_ID - 1) is not None
    )
    return list(tokens) if ok else []


def first_position(backend, data: Any) -> wire.Position | None:
    found = wire.positions(backend.logprobs_of(data))
    return found[0] if found else None


def probe(backend, text: str = "The capital of France is") -> Capabilities:
    """Try the things the loop relies on, once: tokenizer, ids as prompt, logprobs cap, shape,
    and whether the logprobs are the raw distribution or the sampler's."""
    caps, checks, client = backend.caps, backend.caps.checks, backend.client
    ids = backend.encode(text)
    checks["prompt_tokens"] = len(ids)
    if caps.detokenize is not None:
        checks["detokenize_round_trip"] = backend.decode(ids) == text
    if caps.tokenize is not None:
        try:  # a list of ids as the prompt: the token-id loop's one requirement
            client.call("POST", caps.endpoint, dialects.completion_body(backend.dialect, backend.model, ids, 1))
            caps.prompt_ids = backend.sends_ids = True
        except Refused as refused:
            caps.prompt_ids = backend.sends_ids = False
            checks["ids_refused"] = f"{refused.status}: {refused.server_message[:70]}"
    prompt = ids if backend.sends_ids else text
    start = time.perf_counter()
    try:
        data = client.call(
            "POST", caps.endpoint, dialects.completion_body(backend.dialect, backend.model, prompt, PROBE_K)
        )
    except Refused as refused:
        cap = wire.logprobs_cap(refused.server_message)
        if cap is None:
            raise
        checks["logprobs_refused"] = refused.server_message
        caps.max_logprobs = backend.max_top_k = cap
        data = client.call("POST", caps.endpoint, dialects.completion_body(backend.dialect, backend.model, prompt, cap))
    checks["request_ms"] = (time.perf_counter() - start) * 1000
    logprobs = backend.logprobs_of(data)
    found = wire.positions(logprobs)
    returned = len(found[0].top) if found else 0
    checks["logprobs_asked"], checks["logprobs_returned"] = min(PROBE_K, caps.max_logprobs or PROBE_K), returned
    checks["shape"] = wire.shape_of(logprobs)
    checks["keyed_by"] = wire.keyed_by(found[0]) if found else "nothing"
    if caps.max_logprobs is None and 0 < returned < PROBE_K and checks["keyed_by"] != "text":
        caps.max_logprobs = backend.max_top_k = returned  # answered fewer than asked, without a word
    numbers = wire.server_numbers(data) if isinstance(data, dict) else {}
    checks["reports"] = sorted(k for k in numbers if k in ("server_ms", "cached_tokens", "prompt_tokens"))
    if backend.dialect is dialects.VLLM and isinstance(data, dict):
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        checks["per_request_metrics"] = isinstance(data.get("metrics"), dict)
        checks["prompt_tokens_details"] = isinstance(usage.get("prompt_tokens_details"), dict)
    snapshot = metrics.scrape(client)
    if snapshot is not None:
        checks["metric_families"] = metrics.roll_call(snapshot, caps.version)
    if found and found[0].top:
        measure_distribution(backend, prompt, found[0].top[0])
    return caps


def measure_distribution(backend, prompt, greedy_top: wire.Entry, temperature: float = 0.5) -> None:
    """Raw or processed logprobs, measured: ask again at T=0.5. A raw distribution gives the
    favourite the same logprob as the greedy call; one taken after the sampler sharpens it."""
    caps = backend.caps
    k = min(PROBE_K, backend.max_top_k or PROBE_K)
    body = dialects.completion_body(backend.dialect, backend.model, prompt, k, sampler=Sampler(temperature), seed=0)
    try:
        position = first_position(backend, backend.client.call("POST", caps.endpoint, body))
    except ServerError:
        return  # the documented default stands
    same = [e.logprob for e in (position.top if position else []) if (e.id, e.text) == (greedy_top.id, greedy_top.text)]
    if not same or not math.isfinite(same[0]) or not math.isfinite(greedy_top.logprob):
        return
    caps.checks["favourite_logprob_greedy_t05"] = [round(greedy_top.logprob, 4), round(same[0], 4)]
    if abs(same[0] - greedy_top.logprob) > 1e-3:
        caps.distribution = (
            f"processed: measured, the favourite's logprob moved from {greedy_top.logprob:.3f} to "
            f"{same[0]:.3f} at T={temperature}, so the server reports its distribution after "
            "temperature/top-k/top-p (e.g. vLLM --logprobs-mode processed_logprobs)"
        )
    else:
        documented = caps.distribution.removeprefix("raw: ")
        caps.distribution = f"raw (measured: the same logprobs greedy and at T={temperature}): {documented}"
