"""The lessons' live measurements (/api/live/…): each route measures on the backend `deps` finds
(`web/live.py`) and keeps its answer in `app.state.measured` under the lesson's `live:` key, so
"Copy this lesson for your AI" writes the numbers the page drew."""

from __future__ import annotations

from fastapi import APIRouter

from .. import events, live
from ..deps import Backend, InProcess, Local, Server, State
from ..errors import STREAM
from ..schemas import FillIn, StaircaseIn

router = APIRouter(prefix="/api/live")


def kept(state, key: str, result: dict) -> dict:
    """The answer, kept as the last one for the lesson's `live:` key."""
    state.measured[key] = result
    return result


@router.post("/answer_time")
def answer(backend: Backend, state: State) -> dict:
    """Lesson 1: TTFT and time per token on the connected backend, projected to 500 tokens."""
    measured = live.answer_time(backend, state.lesson["prompt"], state.demo["answer_steps"])
    return kept(state, "answer_time", measured)


@router.post("/kv_causal")
def causal(model: InProcess, state: State) -> dict:
    return kept(state, "kv_causal", live.causal(model))


@router.post("/context_cost")
def context(server: Server, model: Local, state: State) -> dict:
    return kept(state, "context_cost", live.context(server, model, state.demo["context_len"]))


@router.post("/staircase")
def staircase(body: StaircaseIn, server: Server, model: Local, state: State) -> dict:
    """Lesson 7, step 2: the staircase on the server (fresh prompts' TTFT against streamed ITL,
    `server_staircase`) or, without one, Lesson 1's staircase demo in this process."""
    return kept(state, "kv_staircase", live.staircase(server, model, state.demos, body))


@router.get("/kv_bytes")
def kv_bytes(server: Server, model: Local, state: State) -> dict:
    """Bytes per cached token: the config's prediction beside the server's allocation, or beside
    the in-process cache's own tensors."""
    return kept(state, "kv_bytes", live.kv_bytes(server, model))


@router.get("/kv_capacity")
def capacity(server: Server, model: Local, state: State) -> dict:
    """How many full-length conversations fit: the server's own figure and the fill it would run."""
    return kept(state, "kv_capacity", live.capacity(server, model))


@router.post("/kv_fill", responses=STREAM)
def fill(body: FillIn, server: Server, state: State):
    """The consented fill, streamed: the plan, /health, a sample every half second, the summary."""
    return events.response(live.fill(server, state.server_url, body, lambda summary: kept(state, "kv_fill", summary)))
