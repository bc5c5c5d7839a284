"""The teacher panel's routes: the lesson's passages that answer a question and the live action it
asks for (/api/teacher/cite), then the model's own answer, streamed (/api/teacher); the logic in
`web/teacher.py`."""

from __future__ import annotations

import threading

from fastapi import APIRouter

from ...errors import UsageError
from ...lessons import content
from .. import events, teacher
from ..deps import Backend, Chatty, State
from ..errors import ERRORS, STREAM
from ..schemas import CiteIn, TeacherIn

router = APIRouter()


@router.post("/api/teacher", responses={**STREAM, **ERRORS})
def ask(body: TeacherIn, chatty: Chatty, backend: Backend, state: State):
    lesson = state.lesson if body.lesson is None else content.load(body.lesson)
    if chatty is None and teacher.outside(lesson, body.question) is None:  # outside: the map, no model
        raise UsageError(f"{backend.model} has no chat template, so it cannot answer as a teacher")
    history = [turn.model_dump() for turn in body.history]
    gone = threading.Event()  # set when the page goes: the model stops within one piece of the prompt
    answer = teacher.answer(chatty, lesson, body.question, history, body.max_new, body.seconds, gone=gone)
    return events.response(answer, gone)


@router.post("/api/teacher/cite", responses=ERRORS)
def cite(body: CiteIn, state: State) -> dict:
    if not body.question.strip():
        raise UsageError("the question is empty: type a question about the lesson")
    lesson = state.lesson if body.lesson is None else content.load(body.lesson)
    return teacher.cite(lesson, body.question)
