"""The connected server's routes (--url): what the probe found (/api/cluster, probed once) and
step 5's staircase measured on the server itself (/api/server-staircase), a job of this browser's
session kept for a revisit (`web/jobs.py`); logic in `web/connected.py`."""

from __future__ import annotations

from fastapi import APIRouter

from .. import connected, jobs
from ..deps import LabSession, Server, State
from ..errors import BUSY, ERRORS
from ..schemas import ServerStaircaseIn
from .live import Asking

router = APIRouter()


@router.get("/api/cluster", responses=ERRORS)
def cluster(server: Server, state: State) -> dict:
    return {"cluster": connected.cluster(server, state)}


@router.get("/api/server-staircase")
def server_staircase_last(session: LabSession) -> dict:
    return {"result": session.kept.get("server_staircase")}


@router.post("/api/server-staircase", responses=BUSY)
async def server_staircase(body: ServerStaircaseIn, asker: Asking, server: Server, state: State) -> dict:
    demo = state.demos["server_staircase"]
    measure = lambda progress: connected.server_staircase(server, demo, body, progress)  # noqa: E731
    return {"result": await jobs.measured(asker, "server_staircase", measure)}
