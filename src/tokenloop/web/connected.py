"""The connected server (--url) as the page shows it: what `tokenloop probe` finds out about it
(engine and version, model, context, logprob cap, raw or processed logprobs, prefix caching),
probed once per app, and step 5's staircase sized to fit it."""

from __future__ import annotations

import threading

from ..backends.server import metrics, numbers
from ..errors import UsageError

_probing = threading.Lock()


def cluster(server, state) -> dict | None:
    """The probe's findings, probed by the first page that asks and kept on `state.cluster`."""
    if server is None:
        return None
    with _probing:
        if getattr(state, "cluster", None) is None:
            state.cluster = facts(server, state.lesson["prompt"])
    return state.cluster


def facts(backend, prompt: str) -> dict:
    """The probe's findings in the words the page shows (each None where the server won't say)."""
    caps = backend.probe(prompt)
    snapshot = metrics.scrape(backend.client)
    config = (snapshot.info("cache_config") if snapshot else None) or {}
    caching = config.get("enable_prefix_caching")
    return {
        "url": caps.url,
        "engine": caps.kind,
        "version": caps.version,
        "model": caps.model,
        "models": caps.models,
        "context_length": caps.context_length,
        "max_logprobs": caps.max_logprobs,
        "logprobs_returned": caps.checks.get("logprobs_returned"),
        "distribution": caps.distribution.split(":")[0].split(" ")[0],  # raw, processed, after, unknown
        "distribution_detail": caps.distribution,
        "prompt_ids": caps.prompt_ids,
        "tokenizer": caps.tokenize,
        "prefix_caching": None if caching is None else caching == "True",
        "block_size": numbers.count(config.get("block_size"), 1 << 20, text=True) or None,
        "request_ms": caps.checks.get("request_ms"),
    }


def server_staircase(server, demo, body, on_progress=None) -> dict:
    """Step 5 on the server itself; the page's default length shortened to fit a small server."""
    if server is None:  # like compare: a page without a server asked for it
        raise UsageError("the server staircase needs a server: start the lesson with --url")
    max_len = body.max_len
    if "max_len" not in body.model_fields_set:
        max_len = max(body.points, min(max_len, server.context_length - body.gaps - 1))
    options = {"max_len": max_len, "points": body.points, "repeats": body.repeats, "gaps": body.gaps}
    return demo.run(server, on_progress=on_progress, **options)
