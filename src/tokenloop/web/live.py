"""The live parts of the lessons' estimate and curve steps, as plain functions over the backends
that `deps` finds (`routes/live.py` serves them under /api/live).

Each answer carries `source` (engine, version, model, hardware: `provenance.py`) so the page can
name them under every chart. Lesson 7's step 1 needs the model's tensors, so it runs on the
embedded model in this process also when the app is connected to a server, and says so; steps 2
and 3 run on the server when there is one (`server_staircase`).
The server's URL is the one the app started with: nothing here takes a URL from the page.
Each function takes `on_progress(done, total)` where it runs more than a moment (it may raise to
stop the run: `jobs.py`), and each answer says what kind of number it reveals (`reveal`):
`measured` just now, `projected` from a number of measured steps, or a `what_if` computed from
measured inputs, which no guess is scored against. The answers are kept per browser session
(`jobs.py`), so "Copy this lesson for your AI" writes the numbers the page drew.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from ..backends.server.metrics import scrape
from ..cost import context as context_cost
from ..cost import kv_capacity, kv_causal, kv_fill
from ..errors import UsageError
from ..latency import answer_time as latency
from ..measure import load, provenance
from ..model.config import Shape
from .errors import Busy, Unavailable

_filling = threading.Lock()
Progress = Callable[[int, int], None] | None


def measured() -> dict:
    return {"kind": "measured", "scored": True}


def projected(steps: int) -> dict:
    """A total projected from `steps` measured steps: scored, and said to be a projection."""
    return {"kind": "projected", "from_steps": steps, "scored": True}


def what_if(why: str) -> dict:
    """Computed from measured inputs under an assumption: shown, never scored."""
    return {"kind": "what_if", "why": why, "scored": False}


def needed(backend):
    """The model in this process, which this step measures: refused where there is none."""
    if backend is None or not backend.in_process:
        raise Unavailable("this step needs the embedded model running in this process")
    return backend


def readable(backend):
    """The from-scratch forward's model, read from the folder the backend's weights came from."""
    if not kv_causal.readable(backend):  # llama.cpp runs a GGUF file: no folder to read
        raise Unavailable(
            "this step reads the model's weights from its folder: run the lesson on the transformers or torch engine"
        )
    return backend


def answer_time(backend, prompt: str, steps: int, on_progress: Progress = None) -> dict:
    """Lesson 1: TTFT and time per token on the connected backend, projected to 500 tokens."""
    if not backend.in_process:
        timed = latency.server(backend.client, backend.model, prompt, steps, on_progress)
    else:
        timed = latency.embedded(backend, prompt, steps, on_progress)
    return {**timed, "reveal": projected(timed["projected_from"]), "source": provenance.of(backend)}


def causal(local) -> dict:
    return {**kv_causal.on_backend(readable(needed(local))), "reveal": measured()}


def context(server, local, longest: int, on_progress: Progress = None) -> dict:
    """Lesson 7, step 3; its `effect` says whether the long context was slower beyond the noise."""
    if server is not None:  # time per streamed token after fresh prompts of each length
        timed = context_cost.server(server, longest, on_progress=on_progress)
        return {**timed, "reveal": measured(), "source": provenance.server(server)}
    backend = needed(local)
    timed = context_cost.measure(backend, longest, on_progress=on_progress)
    return {**timed, "reveal": measured(), "source": provenance.embedded(backend)}


def staircase(server, local, demos: dict, body, on_progress: Progress = None) -> dict:
    """Lesson 7, step 2: the staircase on the server (fresh prompts' TTFT against streamed ITL,
    `server_staircase`) or, without one, Lesson 1's staircase demo in this process."""
    if server is not None:
        longest = max(body.points, min(body.max_len, server.context_length - 9))
        options = {"max_len": longest, "points": body.points, "repeats": body.repeats, "gaps": 8}
        result = demos["server_staircase"].run(server, on_progress=on_progress, **options)
        return {"result": result, "on": "server", "reveal": measured(), "source": provenance.server(server)}
    backend = needed(local)
    options = {"max_len": body.max_len, "points": body.points, "repeats": body.repeats}
    result = demos["staircase"].run(backend, on_progress=on_progress, **options)
    return {"result": result, "on": "embedded", "reveal": measured(), "source": provenance.embedded(backend)}


def kv_bytes(server, local) -> dict:
    """Bytes per cached token: the config's prediction beside the server's allocation, or beside
    the in-process cache's own tensors."""
    if server is None:
        return {**kv_causal.bytes_on_backend(readable(needed(local))), "reveal": measured()}
    config = getattr(local, "config", None)
    predicted = kv_capacity.prediction(Shape.from_config(config)) if config is not None else None
    allocation = kv_capacity.server_allocation(scrape(server.client), server.context_length)
    width = (
        kv_capacity.bytes_per_number(allocation["bytes_per_token"], predicted["values_per_token"])
        if predicted
        else None
    )
    return {
        "predicted": predicted,
        "predicted_from": local.model if local is not None else None,
        "allocation": allocation,
        "bytes_per_number": width,
        "reveal": measured(),
        "source": provenance.server(server),
    }


def capacity(server, local) -> dict:
    """How many full-length conversations fit: the server's own figure and the fill it would run.
    Without a server there is no allocation to read: the number is a what-if (this machine's free
    memory all given to cache), shown beside the measured bytes per token and never scored."""
    if server is None:
        backend = readable(needed(local))
        held = kv_causal.bytes_on_backend(backend)["measured"]
        fits = kv_capacity.in_process(held["bytes_per_token"], backend.context_length)
        why = "if all of this machine's free memory held cache; no server allocated it"
        return {
            "in_process": fits,
            "bytes_per_token": held["bytes_per_token"],
            "reveal": what_if(why),
            "source": provenance.embedded(backend),
        }
    allocation = kv_capacity.server_allocation(scrape(server.client), server.context_length)
    plan = kv_fill.plan(allocation["tokens"], server.context_length)
    return {
        "allocation": allocation,
        "plan": plan.to_json(),
        "loopback": load.is_loopback(server.root),
        "reveal": measured(),
        "source": provenance.server(server),
    }


def fill(server, url: str | None, body, keep: Callable[[dict], None]) -> Iterator[tuple[str, dict]]:
    """The consented fill: checked before anything is sent, then (as events) the plan, /health, a
    sample every half second, the summary (handed to `keep` as well)."""
    if url is None:
        raise UsageError("the fill loads a server: start the app with --url to connect one")
    kv_fill.require_consent(url, body.consent, body.remote)  # before anything is sent
    if server is None:
        raise UsageError("the fill needs the app's backend to be the server: start it with --url")
    allocation = kv_capacity.server_allocation(scrape(server.client), server.context_length)
    plan = kv_fill.plan(allocation["tokens"], server.context_length)

    def run():
        if not _filling.acquire(blocking=False):
            raise Busy("a fill is already running: wait for it to finish")
        try:
            yield "source", provenance.server(server)
            for event, data in kv_fill.fill(server.client, server.model, plan):
                if event == "done":  # the summary, for the Markdown copy
                    keep({**data, "source": provenance.server(server)})
                yield event, data
        finally:
            _filling.release()

    return run()
