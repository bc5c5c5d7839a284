"""Lesson 6's live steps (/api/live/sampling_…), as plain functions over the backends `deps` finds.

Without a server every step runs on the embedded model in this process (`draws/embedded.py`, the
full vocabulary's logits). With one (`--url`) each step asks the server (`draws/server.py`), from
the top logprobs it returns; a step its logprobs mode can't answer (steps 2 and 4 need
processed logprobs) says why in `why` and runs on the embedded model beside it. Steps 3 and 5
send several requests: without `consent` they answer only their plan (`plan_first`, not kept).
Each answer carries `on`, `reveal` (measured) and `source` (`provenance.py`), and is kept per
session by `routes/lesson06.py` under the step's `live` key, so the Markdown copy writes the same
numbers.
"""

from __future__ import annotations

from functools import cache

from ..draws import embedded as draws
from ..draws import server as served
from ..lessons import content
from ..measure import load, provenance
from .live import measured, needed

# Other prompts that share the batch with the lesson's prompt in step 5: different lengths, so the
# lesson's row is padded, as it would be beside strangers' requests on a server.
NEIGHBOURS = [
    "Hello",
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time there was a small robot who",
    "SELECT name FROM users WHERE",
    "2 + 2 =",
    "Write a haiku about autumn leaves falling slowly onto a quiet river",
]


@cache
def prompt() -> str:
    return content.load("day06")["prompt"]


def answer(result: dict, backend, server) -> dict:
    beside = " beside the connected server, which returns only its top logprobs" if server is not None else ""
    return {
        **result,
        "on": f"the embedded model in this process{beside}",
        "reveal": measured(),
        "source": provenance.embedded(backend),
    }


def on_server(result: dict, server) -> dict:
    return {
        **result,
        "on": f"the {server.caps.kind} server at {server.root}",
        "reveal": measured(),
        "source": provenance.server(server),
    }


def beside(result: dict, backend, why: str) -> dict:
    """The embedded computation, labelled as such, where the server's logprobs can't answer."""
    return {
        **result,
        "on": "embedded, beside the server",
        "why": why,
        "reveal": measured(),
        "source": provenance.embedded(backend),
    }


def plan_first(server, body, plan: dict, what: str) -> dict | None:
    """A step that sends several requests: its plan (an answer of its own, never kept) until the
    page sends `consent`; then the consent rules (`draws/server.require_consent`), before anything is sent."""
    if server is None:
        return None
    if body is None or not body.consent:
        return {
            "on": f"the {server.caps.kind} server at {server.root}",
            "needs_consent": True,
            "plan": plan,
            "loopback": load.is_loopback(server.root),
            "source": provenance.server(server),
        }
    served.require_consent(server.root, body.consent, body.remote, what)
    return None


def same_forward(local, server) -> dict:
    if server is not None:
        return on_server(served.same_forward(server, prompt()), server)
    backend = needed(local)
    return answer(draws.same_forward(backend, prompt()), backend, server)


def temperature_prob(local, server) -> dict:
    if server is not None:
        try:
            return on_server(served.temperature_prob(server, prompt()), server)
        except served.NotAnswered as e:
            return beside(draws.temperature_prob(unanswered(local, e), prompt()), local, str(e))
    backend = needed(local)
    return answer(draws.temperature_prob(backend, prompt()), backend, server)


def unanswered(local, why: Exception):
    """The embedded model to compute beside the server, or the server's one-line reason."""
    if local is None or not local.in_process:
        raise served.NotAnswered(str(why))
    return local


def outside_top(local, server, count: int, on_progress=None) -> dict:
    if server is not None:
        return on_server(served.outside_top(server, prompt(), draws=count, on_progress=on_progress), server)
    backend = needed(local)
    return answer(draws.outside_top(backend, prompt(), draws=count), backend, server)


def top_p_kept(local, server) -> dict:
    if server is not None:
        try:
            return on_server(served.top_p_kept(server, prompt()), server)
        except served.NotAnswered as e:
            return beside(draws.top_p_kept(unanswered(local, e), prompt()), local, str(e))
    backend = needed(local)
    return answer(draws.top_p_kept(backend, prompt()), backend, server)


def alone_vs_batch(local, server, steps: int) -> dict:
    if server is not None:
        return on_server(served.alone_vs_batch(server, prompt(), steps=steps), server)
    backend = needed(local)
    result = draws.alone_vs_batch(backend, prompt(), NEIGHBOURS, steps=steps)
    return answer(result, backend, server)
