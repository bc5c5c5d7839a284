"""The lessons' live measurements (/api/live/…): each POST measures on the backend `deps` finds
(`web/live.py`), as a job of this browser's session that stops when its page goes (`web/jobs.py`),
and keeps its answer there under the lesson's `live:` key; `GET /api/live/kept` hands a revisit
what was measured (and the progress of what still runs) without measuring anything."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from .. import events, jobs, live
from ..deps import Backend, InProcess, LabSession, Local, Server, State
from ..errors import BUSY, STREAM
from ..schemas import FillIn, StaircaseIn, StopIn

router = APIRouter(prefix="/api/live")
Name = Annotated[str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]


def asking(request: Request, session: LabSession, lesson: Name = None, page: Name = None) -> jobs.Asker:
    """Who asks: this browser's session, the lesson on its page, the page's id."""
    return jobs.Asker(request, session, lesson, page, request.app.state.lesson["id"])


Asking = Annotated[jobs.Asker, Depends(asking)]


@router.get("/kept")
def kept(asker: Asking) -> dict:
    """`{"results": {live key: answer}, "running": {live key: {"done", "total", "left_s"}}}`."""
    return jobs.kept(asker.session, asker.lesson or asker.default)


@router.post("/stop")
def stop(body: StopIn, session: LabSession) -> dict:
    """The page is going away (`pagehide`): stop the measurements only it waits for."""
    return {"stopped": jobs.stop(session, body.page)}


@router.post("/answer_time", responses=BUSY)
async def answer(asker: Asking, backend: Backend, state: State) -> dict:
    """Lesson 1: TTFT and time per token on the connected backend, projected to 500 tokens."""
    prompt, steps = state.lesson["prompt"], state.demo["answer_steps"]
    return await jobs.measured(
        asker, asker.key("answer_time"), lambda progress: live.answer_time(backend, prompt, steps, progress)
    )


@router.post("/kv_causal", responses=BUSY)
async def causal(asker: Asking, model: InProcess) -> dict:
    return await jobs.measured(asker, asker.key("kv_causal"), lambda progress: live.causal(model))


@router.post("/context_cost", responses=BUSY)
async def context(asker: Asking, server: Server, model: Local, state: State) -> dict:
    longest = state.demo["context_len"]
    return await jobs.measured(
        asker, asker.key("context_cost"), lambda progress: live.context(server, model, longest, progress)
    )


@router.post("/staircase", responses=BUSY)
async def staircase(body: StaircaseIn, asker: Asking, server: Server, model: Local, state: State) -> dict:
    """Lesson 7, step 2: the staircase on the server (fresh prompts' TTFT against streamed ITL,
    `server_staircase`) or, without one, Lesson 1's staircase demo in this process."""
    return await jobs.measured(
        asker, asker.key("kv_staircase"), lambda progress: live.staircase(server, model, state.demos, body, progress)
    )


@router.post("/kv_bytes", responses=BUSY)
async def kv_bytes(asker: Asking, server: Server, model: Local) -> dict:
    """Bytes per cached token: the config's prediction beside the server's allocation, or beside
    the in-process cache's own tensors."""
    return await jobs.measured(asker, asker.key("kv_bytes"), lambda progress: live.kv_bytes(server, model))


@router.post("/kv_capacity", responses=BUSY)
async def capacity(asker: Asking, server: Server, model: Local) -> dict:
    """How many full-length conversations fit: the server's own figure and the fill it would run."""
    return await jobs.measured(asker, asker.key("kv_capacity"), lambda progress: live.capacity(server, model))


@router.post("/kv_fill", responses=STREAM)
def fill(body: FillIn, asker: Asking, server: Server, state: State):
    """The consented fill, streamed: the plan, /health, a sample every half second, the summary."""

    def keep(summary: dict) -> None:
        asker.session.kept[asker.key("kv_fill")] = summary

    return events.response(live.fill(server, state.server_url, body, keep))
