""" "Copy this lesson for your AI": the lesson on screen as one Markdown document, with the numbers
measured on the connected model (`lesson_markdown.render`, the same renderer as `tokenloop lesson
--markdown`).

The page sends the lesson's name and the learner's guesses (they live in the browser), each as its
step kind keeps it: a choice's index, a probability in %, an estimate's number, a curve's list of
shape names. Everything measured comes from here: what costs a forward pass or two is measured
again (`lesson_markdown.measure`), and the demos' and the live steps' last results are the ones
the page drew.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import Field, PlainValidator, StringConstraints

from ..lessons import content
from ..lessons import markdown as lesson_markdown
from .schemas import In, Out
from .score import local

router = APIRouter(tags=["lesson"])
StepId = Annotated[str, StringConstraints(max_length=40)]
MOST = 1e12  # above any estimate's slider
CURVES = 8  # the most curves a step asks for


def guess(value):
    """A guess as its step kind keeps it: a number (a choice's index, a probability in %, an
    estimate) or a curve step's list of shape names."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= MOST:
        return value
    if isinstance(value, list) and len(value) <= CURVES and all(v in content.SHAPES for v in value):
        return value
    raise ValueError(
        f"a guess is a number from 0 to {MOST:,.0f} or a list of at most {CURVES} curve shapes "
        f"({', '.join(content.SHAPES)})"
    )


Guess = Annotated[object, PlainValidator(guess, json_schema_input_type=float | list[str])]


class CopyIn(In):
    lesson: str | None = Field(None, max_length=40, description="the lesson on screen (default: the app's own)")
    guesses: dict[StepId, Guess] = Field(
        default_factory=dict, max_length=50, description="the learner's guesses by step id, as the page keeps them"
    )


class CopyOut(Out):
    markdown: str


@router.post("/api/lesson/markdown", response_model=CopyOut)
def markdown(body: CopyIn, request: Request) -> dict:
    state = request.app.state
    lesson = state.lesson if body.lesson is None else content.load(body.lesson)
    kept = {name: demo.last for name, demo in state.demos.items() if demo.last is not None} | state.measured
    live = lesson_markdown.measure(state.backend, lesson, local=local(request.app), skip=kept)
    live["results"].update(kept)  # what the page drew, not measured again
    live["guesses"] = body.guesses
    live["lab"] = str(request.base_url)
    return {"markdown": lesson_markdown.render(lesson, live)}
