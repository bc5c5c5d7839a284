"""Lesson 6's live steps (/api/live/sampling_…), as plain functions over the backend `deps` finds.

Every step reads the full vocabulary's logits, so each runs on the model in this process: the
embedded model, also when the app is connected to a server (the answer says so in `on`). Each
answer carries `reveal` (measured) and `source` (`provenance.py`), and is kept per session by
`routes/lesson06.py` under the step's `live` key, so the Markdown copy writes the same numbers.
"""

from __future__ import annotations

from functools import cache

from ..draws import embedded as draws
from ..lessons import content
from ..measure import provenance
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


def same_forward(local, server) -> dict:
    backend = needed(local)
    return answer(draws.same_forward(backend, prompt()), backend, server)


def temperature_prob(local, server) -> dict:
    backend = needed(local)
    return answer(draws.temperature_prob(backend, prompt()), backend, server)


def outside_top(local, server, count: int) -> dict:
    backend = needed(local)
    return answer(draws.outside_top(backend, prompt(), draws=count), backend, server)


def top_p_kept(local, server) -> dict:
    backend = needed(local)
    return answer(draws.top_p_kept(backend, prompt()), backend, server)


def alone_vs_batch(local, server, steps: int) -> dict:
    backend = needed(local)
    result = draws.alone_vs_batch(backend, prompt(), NEIGHBOURS, steps=steps)
    return answer(result, backend, server)
