"""The connected server's routes (--url): what the probe found (/api/cluster, probed once) and
step 5's staircase measured on the server itself (/api/server-staircase); logic in `web/connected.py`."""

from __future__ import annotations

from fastapi import APIRouter

from .. import connected
from ..deps import Server, State
from ..errors import BUSY, ERRORS
from ..schemas import ServerStaircaseIn

router = APIRouter()


@router.get("/api/cluster", responses=ERRORS)
def cluster(server: Server, state: State) -> dict:
    return {"cluster": connected.cluster(server, state)}


@router.get("/api/server-staircase")
def server_staircase_last(state: State) -> dict:
    return {"result": state.demos["server_staircase"].last}


@router.post("/api/server-staircase", responses=BUSY)
def server_staircase(body: ServerStaircaseIn, server: Server, state: State) -> dict:
    return {"result": connected.server_staircase(server, state.demos["server_staircase"], body)}
