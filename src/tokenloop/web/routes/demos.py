"""The on-demand demos' routes: a few training steps and the cost staircase, run in this process
(`web/demos.py`) as jobs of this browser's session (`web/jobs.py`): a GET answers the session's
last result, so a reload draws it without measuring again."""

from __future__ import annotations

from fastapi import APIRouter

from .. import jobs
from ..deps import LabSession, Local, State
from ..errors import BUSY
from ..schemas import StaircaseIn, TrainingIn
from .live import Asking

router = APIRouter()


@router.get("/api/training")
def training_last(session: LabSession) -> dict:
    return {"result": session.kept.get("training")}


@router.post("/api/training", responses=BUSY)
async def training(body: TrainingIn, asker: Asking, model: Local, state: State) -> dict:
    demo = state.demos["training"]
    return {
        "result": await jobs.measured(
            asker, "training", lambda progress: demo.run(model, steps=body.steps, on_progress=progress)
        )
    }


@router.get("/api/staircase")
def staircase_last(session: LabSession) -> dict:
    return {"result": session.kept.get("staircase")}


@router.post("/api/staircase", responses=BUSY)
async def staircase(body: StaircaseIn, asker: Asking, model: Local, state: State) -> dict:
    options = {"max_len": body.max_len, "points": body.points, "repeats": body.repeats}
    demo = state.demos["staircase"]
    return {
        "result": await jobs.measured(
            asker, "staircase", lambda progress: demo.run(model, on_progress=progress, **options)
        )
    }
