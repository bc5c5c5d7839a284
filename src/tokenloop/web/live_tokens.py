"""Lesson 2's live steps (/api/live/token_…), as plain functions over the backends `deps` finds;
`routes/lesson02.py` serves them. The counting is `cost/tokens.py`'s.

Every step asks the connected backend's own tokenizer: the server's (`/tokenize`, vLLM first)
when the app has one, else the embedded model's in this process. Step 2 in this process checks its
count against the app's own `/v1/chat/completions` (`chat.whole`), called here as a
client would; step 5 on a server without prompt scores runs on the embedded model and says why.
Each answer carries `on`, `reveal` (measured) and `source` (`provenance.py`), and is kept per
session under the step's `live` key, so the Markdown copy writes the same numbers.
"""

from __future__ import annotations

from functools import cache

from ..cost import tokens
from ..lessons import content
from ..measure import provenance
from . import chat as chat_endpoint
from .live import measured, needed


@cache
def lesson() -> dict:
    return content.load("day02")


def step(live: str) -> dict:
    return next(s for s in lesson()["steps"] if s.get("live") == live)


def where(backend) -> dict:
    """Where the numbers came from: the server, or the model in this process."""
    if backend.in_process:
        return {
            "on": "the embedded model in this process",
            "reveal": measured(),
            "source": provenance.embedded(backend),
        }
    return {
        "on": f"the {backend.caps.kind} server at {backend.root}",
        "reveal": measured(),
        "source": provenance.server(backend),
    }


def asked(server, local):
    """The backend whose tokenizer the step counts with: the server when there is one."""
    return server if server is not None else needed(local)


def pieces(server, local) -> dict:
    backend = asked(server, local)
    return {**tokens.pieces(backend, lesson()["prompt"]), **where(backend)}


def chat(server, local) -> dict:
    backend = asked(server, local)
    call = None if not backend.in_process else lambda body: chat_endpoint.whole(backend, body)
    return {**tokens.chat_share(backend, lesson()["prompt"], call), **where(backend)}


def per_kilochar(server, local) -> dict:
    backend = asked(server, local)
    return {**tokens.per_kilochar(backend, step("tokens_per_kchar")["samples"]), **where(backend)}


def limits(server, local) -> dict:
    backend = asked(server, local)
    return {**tokens.limits(backend), **where(backend)}


def surprise(server, local) -> dict:
    if server is not None and server.dialect.prompt_scores:
        return {**tokens.surprise(server, lesson()["prompt"]), **where(server)}
    backend = needed(local)
    why = None
    if server is not None:
        why = (
            f"{server.caps.kind} returns no scores for the prompt's positions (vLLM's prompt_logprobs does), "
            "so these are the embedded model's, computed in this process"
        )
    return {**tokens.surprise(backend, lesson()["prompt"]), **where(backend), "why": why}
