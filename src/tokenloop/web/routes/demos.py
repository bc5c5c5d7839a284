"""The on-demand demos' routes: a few training steps and the cost staircase, run in this process
(`web/demos.py`); a GET answers the last result, so a reload draws it without measuring again."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import Local, State
from ..errors import BUSY
from ..schemas import StaircaseIn, TrainingIn

router = APIRouter()


@router.get("/api/training")
def training_last(state: State) -> dict:
    return {"result": state.demos["training"].last}


@router.post("/api/training", responses=BUSY)
def training(body: TrainingIn, model: Local, state: State) -> dict:
    return {"result": state.demos["training"].run(model, steps=body.steps)}


@router.get("/api/staircase")
def staircase_last(state: State) -> dict:
    return {"result": state.demos["staircase"].last}


@router.post("/api/staircase", responses=BUSY)
def staircase(body: StaircaseIn, model: Local, state: State) -> dict:
    options = {"max_len": body.max_len, "points": body.points, "repeats": body.repeats}
    return {"result": state.demos["staircase"].run(model, **options)}
