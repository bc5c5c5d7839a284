"""The two HTML pages: the lesson (/, `static/index.html`) and the lab (/lab, `static/lab.html`).
Their scripts and styles are served from /static (mounted by `create_app`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent.parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/")
def lesson_page():
    return FileResponse(STATIC / "index.html")


@router.get("/lab")
def lab_page():
    return FileResponse(STATIC / "lab.html")
