"""The live parts of the lessons' estimate and curve steps: thin routes over plain modules.

Each answer carries `source` (engine, version, model, hardware: `provenance.py`) so the page can
name them under every chart. Lesson 7's step 1 needs the model's tensors, so it runs on the
embedded model in this process also when the app is connected to a server, and says so; steps 2
and 3 run on the server when there is one (`server_staircase`).
The server's URL is the one the app started with: nothing here takes a URL from the page.
Each route keeps its last answer in `app.state.measured` under the lesson's `live:` key (the fill's
summary under `kv_fill`), so "Copy this lesson for your AI" writes the numbers the page drew.
"""

from __future__ import annotations

import threading

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from ..backends.server.metrics import scrape
from ..cost import context as context_cost
from ..cost import kv_capacity, kv_causal, kv_fill
from ..errors import UsageError
from ..latency import answer_time
from ..measure import load, provenance
from ..model.config import Shape
from . import events
from .demos import Busy, Unavailable
from .schemas import StaircaseIn
from .score import local

router = APIRouter(prefix="/api/live")
_filling = threading.Lock()


class FillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consent: bool = False  # the click after the stated plan
    remote: bool = False  # "I run this server": needed when it is not on this machine


def in_process(request: Request):
    backend = local(request.app)
    if backend is None or not backend.in_process:
        raise Unavailable("this step needs the embedded model running in this process")
    return backend


def server_of(request: Request):
    backend = request.app.state.backend
    return None if backend.in_process else backend


def scratch_of(backend):
    """The from-scratch forward's model, read from the folder the backend's weights came from."""
    if not kv_causal.readable(backend):  # llama.cpp runs a GGUF file: no folder to read
        raise Unavailable(
            "this step reads the model's weights from its folder: run the lesson on the transformers or torch engine"
        )
    return kv_causal.scratch_model(backend.model_dir)


def kept(request: Request, key: str, result: dict) -> dict:
    """The answer, kept as the last one for the lesson's `live:` key."""
    request.app.state.measured[key] = result
    return result


@router.post("/answer_time")
def answer(request: Request) -> dict:
    """Lesson 1: TTFT and time per token on the connected backend, projected to 500 tokens."""
    app = request.app
    prompt, steps, backend = app.state.lesson["prompt"], app.state.demo["answer_steps"], app.state.backend
    if not backend.in_process:
        measured = answer_time.server(backend.client, backend.model, prompt, steps)
    else:
        measured = answer_time.embedded(backend, prompt, steps)
    return kept(request, "answer_time", {**measured, "source": provenance.of(backend)})


@router.post("/kv_causal")
def causal(request: Request) -> dict:
    backend = in_process(request)
    scratch_of(backend)  # refuses a GGUF-only engine with its one line
    return kept(request, "kv_causal", kv_causal.on_backend(backend))


@router.post("/context_cost")
def context(request: Request) -> dict:
    server = server_of(request)
    if server is not None:  # time per streamed token after fresh prompts of each length
        measured = {
            **context_cost.server(server, request.app.state.demo["context_len"]),
            "source": provenance.server(server),
        }
        return kept(request, "context_cost", measured)
    backend = in_process(request)
    measured = context_cost.measure(backend, request.app.state.demo["context_len"])
    return kept(request, "context_cost", {**measured, "source": provenance.embedded(backend)})


@router.post("/staircase")
def staircase(body: StaircaseIn, request: Request) -> dict:
    """Lesson 7, step 2: the staircase on the server (fresh prompts' TTFT against streamed ITL,
    `server_staircase`) or, without one, Lesson 1's staircase demo in this process."""
    server = server_of(request)
    if server is not None:
        longest = max(body.points, min(body.max_len, server.context_length - 9))
        options = {"max_len": longest, "points": body.points, "repeats": body.repeats, "gaps": 8}
        result = request.app.state.demos["server_staircase"].run(server, **options)
        return kept(request, "kv_staircase", {"result": result, "on": "server", "source": provenance.server(server)})
    backend = in_process(request)
    options = {"max_len": body.max_len, "points": body.points, "repeats": body.repeats}
    result = request.app.state.demos["staircase"].run(backend, **options)
    return kept(request, "kv_staircase", {"result": result, "on": "embedded", "source": provenance.embedded(backend)})


@router.get("/kv_bytes")
def kv_bytes(request: Request) -> dict:
    """Bytes per cached token: the config's prediction beside the server's allocation, or beside
    the in-process cache's own tensors."""
    server, mine = server_of(request), local(request.app)
    if server is None:
        backend = in_process(request)
        scratch_of(backend)
        return kept(request, "kv_bytes", kv_causal.bytes_on_backend(backend))
    config = getattr(mine, "config", None)
    predicted = kv_capacity.prediction(Shape.from_config(config)) if config is not None else None
    allocation = kv_capacity.server_allocation(scrape(server.client), server.context_length)
    width = (
        kv_capacity.bytes_per_number(allocation["bytes_per_token"], predicted["values_per_token"])
        if predicted
        else None
    )
    measured = {
        "predicted": predicted,
        "predicted_from": mine.model if mine is not None else None,
        "allocation": allocation,
        "bytes_per_number": width,
        "source": provenance.server(server),
    }
    return kept(request, "kv_bytes", measured)


@router.get("/kv_capacity")
def capacity(request: Request) -> dict:
    """How many full-length conversations fit: the server's own figure and the fill it would run."""
    server = server_of(request)
    if server is None:
        backend = in_process(request)
        scratch_of(backend)
        held = kv_causal.bytes_on_backend(backend)["measured"]
        fits = kv_capacity.in_process(held["bytes_per_token"], backend.context_length)
        measured = {
            "in_process": fits,
            "bytes_per_token": held["bytes_per_token"],
            "source": provenance.embedded(backend),
        }
        return kept(request, "kv_capacity", measured)
    allocation = kv_capacity.server_allocation(scrape(server.client), server.context_length)
    plan = kv_fill.plan(allocation["tokens"], server.context_length)
    measured = {
        "allocation": allocation,
        "plan": plan.to_json(),
        "loopback": load.is_loopback(server.root),
        "source": provenance.server(server),
    }
    return kept(request, "kv_capacity", measured)


@router.post("/kv_fill", responses={200: {"content": {"text/event-stream": {}}}})
def fill(body: FillIn, request: Request):
    """The consented fill, streamed: the plan, /health, a sample every half second, the summary."""
    url = request.app.state.server_url
    if url is None:
        raise UsageError("the fill loads a server: start the app with --url to connect one")
    kv_fill.require_consent(url, body.consent, body.remote)  # before anything is sent
    server = server_of(request)
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
                    kept(request, "kv_fill", {**data, "source": provenance.server(server)})
                yield event, data
        finally:
            _filling.release()

    return events.response(run())
