"""Lesson 3's live steps (prefill and decode), as plain functions over the backends `deps` finds;
`routes/lesson03.py` serves them under /api/live. Like `live.py`'s: each answer names its
`source` and what kind of number it is (`reveal`: measured, or projected from measured steps).

Steps 1–3 and 6 run on the server when the app has one (fresh prompts with a new `cache_salt`,
streamed), else in this process. Step 4 reads vLLM's `prompt_logprobs` (its own prefill's scores at
every position); on a server without them it runs on the embedded model and says why. Step 5 needs
one attention layer's tensors, so it runs on the embedded model, also beside a server, and says so.
"""

from __future__ import annotations

from ..cost import attention_memory, prefill
from ..measure import provenance
from ..model.config import Shape
from .live import Progress, measured, needed, projected

DEFAULTS = {
    "prefill_len": 512,
    "prefill_repeats": 3,
    "answer_tokens": 500,
    "attention_lens": (1024, 2048, 4096),
    "ttft_repeats": 3,
}


def knob(demo: dict, name: str):
    return demo.get(name, DEFAULTS[name])


def phases(server, local, demo: dict, on_progress: Progress = None) -> dict:
    """Step 1: the prefill's time and a decode step's time against the prompt's length."""
    longest, repeats = knob(demo, "prefill_len"), knob(demo, "prefill_repeats")
    if server is not None:
        timed = prefill.server_phases(server, longest, max(2, repeats - 1), on_progress=on_progress)
        return {**timed, "reveal": measured(), "source": provenance.server(server)}
    backend = needed(local)
    timed = prefill.phases(backend, longest, repeats, on_progress=on_progress)
    return {**timed, "reveal": measured(), "source": provenance.embedded(backend)}


def token_cost(phased: dict) -> dict:
    """Step 2: from step 1's own measurements (kept, or measured for it just now)."""
    return {**prefill.ratio(phased), "reveal": measured(), "source": phased["source"]}


def answer_vs_prompt(server, local, prompt: str, demo: dict, steps: int) -> dict:
    """Step 3: a long answer to a short prompt against a long prompt with a one-token answer."""
    tokens = knob(demo, "answer_tokens")
    if server is not None:
        timed = prefill.server_answer_vs_prompt(server, prompt, tokens)
        source = provenance.server(server)
    else:
        backend = needed(local)
        timed = prefill.answer_vs_prompt(backend, backend.encode(prompt), tokens, steps)
        source = provenance.embedded(backend)
    rest = timed["long_answer"]["projected_steps"]
    reveal = projected(timed["long_answer"]["timed_steps"]) if rest else measured()
    return {**timed, "reveal": reveal, "source": source}


def positions(server, local, prompt: str) -> dict:
    """Step 4: the prefill's prediction at every position of the lesson's prompt: vLLM's own
    (`prompt_logprobs`), or the embedded model's logits, with a line saying why where a server
    can't give them."""
    if server is not None and server.dialect.prompt_scores:
        found = prefill.server_positions(server, server.encode(prompt))
        return {**found, "reveal": measured(), "source": provenance.server(server)}
    backend = needed(local)
    why = None
    if server is not None:
        why = (
            f"{server.caps.kind} returns no scores for the prompt's positions (vLLM's prompt_logprobs "
            "does), so these rows are the embedded model's, computed in this process"
        )
    return {
        **prefill.positions(backend, backend.encode(prompt)),
        "why_not_server": why,
        "reveal": measured(),
        "source": provenance.embedded(backend),
    }


def ttft(server, local, prompt: str, demo: dict) -> dict:
    """Step 6: where the time to first token went: the server's own account of each request
    (queue, server TTFT, the rest), or in this process tokenize, forward and the rest."""
    repeats = knob(demo, "ttft_repeats")
    if server is not None:
        found = prefill.server_ttft_account(server, prompt, repeats)
        return {**found, "reveal": measured(), "source": provenance.server(server)}
    backend = needed(local)
    return {
        **prefill.ttft_account(backend, prompt, repeats),
        "reveal": measured(),
        "source": provenance.embedded(backend),
    }


def attention(local, demo: dict, on_progress: Progress = None) -> dict:
    """Step 5: one attention layer of this model's shape, naive against fused, bounded in memory;
    8,192 tokens projected from the measured growth unless it was measured."""
    backend = needed(local)
    shape = Shape.from_config(backend.config)
    timed = attention_memory.measure(
        shape.heads, shape.head_dim, tuple(knob(demo, "attention_lens")), on_progress=on_progress
    )
    p = timed["projected"]
    reveal = measured() if p["measured"] else projected(len(p["from"]))
    return {**timed, "reveal": reveal, "source": provenance.embedded(backend)}
