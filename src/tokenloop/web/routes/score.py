"""Score mode's route: one teacher-forced pass over a pasted text (`web/score.py`)."""

from __future__ import annotations

from fastapi import APIRouter

from .. import score as scoring
from ..deps import Local
from ..errors import ERRORS
from ..schemas import ScoreIn, ScoreOut

router = APIRouter()


@router.post("/api/score", response_model=ScoreOut, responses=ERRORS)
def score_(body: ScoreIn, model: Local):
    return scoring.score(model, body.text)
