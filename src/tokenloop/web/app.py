"""The lesson and the lab as a local web app: `create_app(backend)` builds the FastAPI app and
defines no route itself. It puts the state on `app.state` (the backend(s), the lesson, the lab
sessions, where each browser's measured results are kept, and the demos), adds the guard
(`middleware.py`), the error handlers (`errors.py`), the static files and every router
(`routes/`). The server URL (if any) is fixed here at start: nothing a page sends can change it.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..lessons import content
from . import errors, middleware
from .demos import demos
from .routes import ROUTERS
from .routes.pages import STATIC
from .sessions import SessionStore

# How big the on-demand demos are by default (a learner's button press); tests pass smaller ones.
DEMO = {
    "steps": 6,
    "max_len": 256,
    "points": 6,
    "repeats": 2,
    "teacher_max_new": 96,
    "context_len": 1024,
    "answer_steps": 16,
    "completion_s": 120.0,  # the longest one /v1/completions request may hold the model
}


def create_app(
    backend,
    *,
    compare=None,
    lesson: str = "day01",
    server_url: str | None = None,
    max_sessions: int = 32,
    allowed_hosts: list[str] | None = None,
    demo: dict | None = None,
    body_timeout_s: float | None = None,
) -> FastAPI:
    """The app for one connected backend (and, with a server, the embedded model beside it)."""
    app = FastAPI(title="tokenloop lesson", version="1", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.backend, app.state.compare, app.state.server_url = backend, compare, server_url
    app.state.lesson = content.load(lesson)
    app.state.sessions = SessionStore(max_sessions)
    app.state.demos = demos()
    app.state.demo = {**DEMO, **(demo or {})}
    middleware.install(app, allowed_hosts, body_timeout_s)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
