"""The lesson's data routes: what the app is connected to (/api/info), the lessons by name, the
lesson as Markdown for the learner's own AI, and the next-token bars of a text (/api/next)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...lessons import content
from ...loop import next_token, prompt_ids
from .. import for_your_ai
from .. import info as about
from ..deps import Backend, Chatty, LabSession, State
from ..errors import ERRORS
from ..schemas import CopyIn, CopyOut, InfoOut, NextIn, NextOut

router = APIRouter()


@router.get("/api/info", response_model=InfoOut)
def info(state: State, chatty: Chatty, request: Request):
    return about.info(state, chatty, str(request.base_url))


@router.post("/api/next", response_model=NextOut, responses=ERRORS)
def next_(body: NextIn, backend: Backend):
    return next_token(backend, prompt_ids(backend, body.prompt, body.chat), body.top_k).to_json()


@router.get("/api/lessons")
def lessons() -> list[dict]:
    """[{"id", "title"}] for every lesson, in course order."""
    return content.listing()


@router.get("/api/lesson")
def lesson(state: State, name: str | None = None) -> dict:
    """A lesson's content (default: the one the app was started with)."""
    return state.lesson if name is None else content.load(name)


@router.post("/api/lesson/markdown", response_model=CopyOut, tags=["lesson"])
def markdown(body: CopyIn, state: State, request: Request, session: LabSession) -> dict:
    """The lesson with this browser's measured numbers (its session's kept results)."""
    return {"markdown": for_your_ai.markdown(state, body.lesson, body.guesses, str(request.base_url), session)}
