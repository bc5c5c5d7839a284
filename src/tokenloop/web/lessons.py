"""The lessons as a set: every YAML lesson by id and title, and any one of them by name."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..lessons import content

router = APIRouter()


@router.get("/api/lessons")
def lessons() -> list[dict]:
    """[{"id", "title"}] for every lesson, in course order."""
    return content.listing()


@router.get("/api/lesson")
def lesson(request: Request, name: str | None = None) -> dict:
    """A lesson's content (default: the one the app was started with)."""
    return request.app.state.lesson if name is None else content.load(name)
