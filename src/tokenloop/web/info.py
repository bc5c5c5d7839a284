"""What the page is told about the app (`GET /api/info`): the connected backend and what it can
do, the model beside it, the lessons, the demos' sizes, where the numbers come from, and the exact
curl behind the lesson's bars."""

from __future__ import annotations

import json
import shlex

from ..lessons import content
from ..measure import provenance
from . import teacher
from .deps import local_of


def info(state, chatty, base_url: str) -> dict:
    b, other = state.backend, state.compare
    return {
        "backend": b.name,
        "model": b.model,
        "context_length": b.context_length,
        "vocab_size": b.vocab_size,
        "full_vocab": b.full_vocab,
        "compare": other.model if other is not None else None,
        "can_score": local_of(state) is not None,
        "can_chat": chatty is not None,
        "teacher_model": chatty.model if chatty else None,
        "teacher": teacher.about(chatty, local_of(state)),  # its size, and whether it answers only when asked
        "server_url": state.server_url,
        "curl": curl(state, base_url),
        "lessons": content.available(),
        "demo": state.demo,
        "source": provenance.of(b),  # engine, version, model, hardware: named under every chart
    }


def curl(state, base_url: str) -> str:
    """The exact call behind the lesson's bars, for the model this app is connected to."""
    body = {"model": state.backend.model, "prompt": state.lesson["prompt"], "max_tokens": 1, "logprobs": 8}
    body["temperature"] = 0  # (the logprobs are the raw distribution's either way; this fixes the pick)
    root = state.server_url or base_url  # the server, or this app's own /v1 (routes/openai.py)
    url = root.rstrip("/") + "/v1/completions"
    return f"curl -s {url} -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body, ensure_ascii=False))}"
