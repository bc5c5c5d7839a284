""" "Copy this lesson for your AI": the lesson as one Markdown document, with the numbers measured
on the connected model (`lesson_markdown.render`, the same renderer as `tokenloop lesson
--markdown`).

The page sends only the learner's guesses (they live in the browser). Everything measured comes
from here: step 3's distribution is asked of the connected model again (one forward pass, the
same numbers as the bars), and the demos' last results are the ones the page drew.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import Field, StringConstraints

from .. import lesson_markdown
from .schemas import In, Out

router = APIRouter(tags=["lesson"])
StepId = Annotated[str, StringConstraints(max_length=40)]


class CopyIn(In):
    guesses: dict[StepId, int | float] = Field(
        default_factory=dict, max_length=50, description="the learner's guesses by step id, as the page keeps them"
    )


class CopyOut(Out):
    markdown: str


@router.post("/api/lesson/markdown", response_model=CopyOut)
def markdown(body: CopyIn, request: Request) -> dict:
    state = request.app.state
    live = lesson_markdown.measure(state.backend, state.lesson)
    live["results"].update({name: demo.last for name, demo in state.demos.items() if demo.last is not None})
    live["guesses"] = body.guesses
    live["lab"] = str(request.base_url)
    return {"markdown": lesson_markdown.render(state.lesson, live)}
