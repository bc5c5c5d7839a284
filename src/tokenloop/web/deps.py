"""What a route is given, as FastAPI dependencies: the one place that says which backend a route
runs on, and the browser's lab session. Each lookup reads what `create_app` put on `app.state`
and a backend's declared capabilities (`in_process`, `can_chat`), never its name; a route names
what it needs by type:

- `Backend`: the backend the app was started with (a server with --url, else the embedded model);
- `Local`: the model running in this process (the connected one, or the embedded model beside a
  --url server), or None; `InProcess`: the same, refused with a 503 where there is none;
- `Server`: the connected server (--url), or None; fixed at start, nothing a page sends changes it;
- `Chatty`: the backend that can answer as the teacher (a chat template or a chat endpoint), or None;
- `State`: `app.state` itself (the lesson, the demos, the measured numbers);
- `LabSession`: this browser's lab session (its cookie set on the answer); a GET only reads one:
  it makes none and evicts none (an `<img>` on another page sends GETs, too many to trust).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from starlette.datastructures import State as AppState

from ..backends import Backend as AnyBackend
from ..errors import ModelError
from .sessions import COOKIE, Session


def backend(request: Request) -> AnyBackend:
    return request.app.state.backend


def local(request: Request) -> AnyBackend | None:
    return local_of(request.app.state)


def local_of(state: AppState) -> AnyBackend | None:
    """The model in this process: the connected backend, or the embedded model beside a server."""
    return next((b for b in (state.backend, state.compare) if b is not None and b.in_process), None)


def in_process(request: Request) -> AnyBackend:
    found = local(request)
    if found is None:
        raise ModelError(
            "no model runs in this process: start `tokenloop lesson` on the embedded model, "
            "or with --url to keep the embedded model beside the server"
        )
    return found


def server(request: Request) -> AnyBackend | None:
    state = request.app.state
    return state.backend if state.server_url and not state.backend.in_process else None


def chatty(request: Request) -> AnyBackend | None:
    state = request.app.state
    return next((b for b in (state.backend, state.compare) if b is not None and b.can_chat), None)


def app_state(request: Request) -> AppState:
    return request.app.state


def lab_session(request: Request, response: Response) -> Session:
    cookie, sessions = request.cookies.get(COOKIE), request.app.state.sessions
    if request.method in ("GET", "HEAD"):  # reading: this browser's session if it has one, else a blank one not kept
        return sessions.find(cookie) or Session("")
    session = sessions.get(cookie)
    remember(response, session)
    return session


def remember(response: Response, session: Session) -> None:
    """Set the session's cookie on an answer (a streamed one too, which no dependency sees)."""
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", max_age=7 * 24 * 3600)


Backend = Annotated[AnyBackend, Depends(backend)]
Local = Annotated[AnyBackend | None, Depends(local)]
InProcess = Annotated[AnyBackend, Depends(in_process)]
Server = Annotated[AnyBackend | None, Depends(server)]
Chatty = Annotated[AnyBackend | None, Depends(chatty)]
State = Annotated[AppState, Depends(app_state)]
LabSession = Annotated[Session, Depends(lab_session)]
