"""The lesson and the lab as a local web app: `create_app(backend)` returns a FastAPI app.

Routes are a few lines each; the logic is in `lab.py`, `score.py`, `teacher.py`, `demos.py`.
State lives on `app.state`: the backend(s), the lesson, the lab sessions, the demos' last
results. The server URL (if any) is fixed here at start: nothing a page sends can change it.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Iterator
from pathlib import Path

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..errors import ModelError, ServerError, TokenloopError, UsageError
from ..lessons import content
from ..loop import generate, next_token, prompt_ids
from ..measure import provenance
from ..records import Done
from . import connected, demos, for_your_ai, lab, lessons, live, openai_api, score, teacher
from .events import response as events_response
from .schemas import (
    BranchIn,
    CompareIn,
    ErrorOut,
    InfoOut,
    LabOut,
    NextIn,
    NextOut,
    RunIn,
    ScoreIn,
    ScoreOut,
    StaircaseIn,
    StartIn,
    StepIn,
    StepOut,
    TeacherIn,
    TrainingIn,
)
from .score import local
from .sessions import COOKIE, Session, SessionStore

STATIC = Path(__file__).parent / "static"
MAX_BODY = 256 * 1024  # bytes: every request of the page is far smaller
log = logging.getLogger("tokenloop.web")

STATUS = {UsageError: 400, demos.Busy: 409, ServerError: 502, ModelError: 503, demos.Unavailable: 503}
ERRORS = {
    400: {"model": ErrorOut, "description": "bad input, with a message that says what to do"},
    503: {"model": ErrorOut, "description": "not available with this backend or install"},
}


def status_of(error: TokenloopError) -> int:
    return next((code for cls, code in STATUS.items() if isinstance(error, cls)), 500)


class Guard:
    """Plain ASGI middleware: refuse state-changing requests from other sites and bodies over
    MAX_BODY (read here up to the limit, chunked or not), and add headers that keep the page from
    running anything it did not ship (no inline script, no other origin)."""

    HEADERS = [
        (
            b"content-security-policy",
            b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and cross_site(headers):
            response = JSONResponse({"error": "refused: a request from another site can't change the lab"}, 403)
            return await response(scope, receive, send)
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return await too_large(scope, receive, send)
        # Read the body here, whatever its transfer encoding (a chunked upload names no length),
        # and stop at the limit: the app never holds more than MAX_BODY of it.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_BODY:
                return await too_large(scope, receive, send)
            if not message.get("more_body"):
                break
        replayed = False

        async def body_once():
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: the client's disconnect
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.HEADERS
            await send(message)

        await self.app(scope, body_once, with_headers)


def cross_site(headers: dict[bytes, bytes]) -> bool:
    """A browser request sent by a page of another origin (a form or fetch on someone else's site).
    Browsers say so in Sec-Fetch-Site, and in Origin; curl and scripts send neither."""
    fetch_site = headers.get(b"sec-fetch-site")
    if fetch_site is not None and fetch_site not in (b"same-origin", b"none"):
        return True
    origin = headers.get(b"origin")
    if origin is None:
        return False
    host = headers.get(b"host", b"")
    return origin not in (b"http://" + host, b"https://" + host)


async def too_large(scope, receive, send):
    response = JSONResponse({"error": f"the request body is over {MAX_BODY // 1024} KiB: send less text"}, 413)
    await response(scope, receive, send)


# How big the on-demand demos are by default (a learner's button press); tests pass smaller ones.
DEMO = {
    "steps": 6,
    "max_len": 256,
    "points": 6,
    "repeats": 2,
    "teacher_max_new": 96,
    "context_len": 1024,
    "answer_steps": 16,
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
) -> FastAPI:
    """The app for one connected backend (and, with a server, the embedded model beside it)."""
    app = FastAPI(title="tokenloop lesson", version="1", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.backend, app.state.compare, app.state.server_url = backend, compare, server_url
    app.state.lesson = content.load(lesson)
    app.state.sessions = SessionStore(max_sessions)
    app.state.demos = {name: demos.Demo(name) for name in demos.MODULES}
    app.state.measured = {}  # the /api/live routes' last answers, by the lessons' live keys (live.py)
    app.state.demo = {**DEMO, **(demo or {})}
    app.add_middleware(Guard)
    if allowed_hosts:  # a page on another site can't reach us through a rebound DNS name
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_errors(app)
    add_routes(app)
    app.include_router(lessons.router)
    app.include_router(live.router)
    app.include_router(connected.router)  # the connected server, the teacher's citations
    app.include_router(openai_api.router)  # /v1/completions, /v1/models: the real call, on the model here
    app.include_router(for_your_ai.router)  # the lesson as Markdown, with its live numbers
    return app


def install_errors(app: FastAPI) -> None:
    @app.exception_handler(TokenloopError)
    async def tokenloop_error(request: Request, error: TokenloopError):
        return JSONResponse({"error": str(error)}, status_of(error))

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception):  # still logged with its traceback by the server
        return JSONResponse(
            {"error": f"internal error ({type(error).__name__}): see the terminal running tokenloop lesson"}, 500
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError):
        # Where and what, never the input itself: an error reply doesn't echo the request (nor a
        # non-finite number, which JSON can't hold).
        detail = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "invalid")),
                "type": str(e.get("type", "")),
            }
            for e in error.errors()
        ]
        first = detail[0] if detail else {"loc": [], "msg": "invalid"}
        where = ".".join(p for p in first["loc"] if p != "body") or "request"
        return JSONResponse({"error": f"{where}: {first['msg']}", "detail": detail}, 422)


# --- pieces the routes share ---------------------------------------------------------------------
def lab_session(request: Request, response: Response) -> Session:
    session = request.app.state.sessions.get(request.cookies.get(COOKIE))
    remember(response, session)
    return session


def remember(response: Response, session: Session) -> None:
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", max_age=7 * 24 * 3600)


def chatty(app: FastAPI):
    return next((b for b in (app.state.backend, app.state.compare) if b is not None and teacher.can_chat(b)), None)


def stream(events: Iterator[tuple[str, dict]], session: Session | None = None) -> StreamingResponse:
    response = events_response(events)
    if session is not None:
        remember(response, session)
    return response


def curl(app: FastAPI, request: Request) -> str:
    """The exact call behind the lesson's bars, for the model this app is connected to."""
    body = {"model": app.state.backend.model, "prompt": app.state.lesson["prompt"], "max_tokens": 1, "logprobs": 8}
    body["temperature"] = 0  # (the logprobs are the raw distribution's either way; this fixes the pick)
    root = app.state.server_url or str(request.base_url)  # the server, or this app's own /v1 (openai_api.py)
    url = root.rstrip("/") + "/v1/completions"
    return f"curl -s {url} -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body, ensure_ascii=False))}"


def side(backend, body: CompareIn) -> dict:
    """One backend's answer for the compare view: the distribution and a short greedy run."""
    ids = prompt_ids(backend, body.prompt, body.chat)
    out = next_token(backend, ids, body.top_k).to_json()
    done = [r for r in generate(backend, ids, body.max_new, show=1) if isinstance(r, Done)] if body.max_new else []
    out["text"] = done[0].text if done else ""
    return out


# --- routes --------------------------------------------------------------------------------------
def add_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def lesson_page():
        return FileResponse(STATIC / "index.html")

    @app.get("/lab", include_in_schema=False)
    def lab_page():
        return FileResponse(STATIC / "lab.html")

    @app.get("/api/info", response_model=InfoOut)
    def info(request: Request):
        b, other, chat = app.state.backend, app.state.compare, chatty(app)
        return {
            "backend": b.name,
            "model": b.model,
            "context_length": b.context_length,
            "vocab_size": b.vocab_size,
            "full_vocab": b.full_vocab,
            "compare": other.model if other is not None else None,
            "can_score": local(app) is not None,
            "can_chat": chat is not None,
            "teacher_model": chat.model if chat else None,
            "server_url": app.state.server_url,
            "curl": curl(app, request),
            "lessons": content.available(),
            "demo": app.state.demo,
            "source": provenance.of(b),  # engine, version, model, hardware: named under every chart
        }

    @app.post("/api/next", response_model=NextOut, responses=ERRORS)
    def next_(body: NextIn):
        b = app.state.backend
        return next_token(b, prompt_ids(b, body.prompt, body.chat), body.top_k).to_json()

    @app.get("/api/lab", response_model=LabOut)
    def lab_state(session: Session = Depends(lab_session)):
        return lab.state(app.state.backend, session)

    @app.post("/api/lab/start", response_model=LabOut, responses=ERRORS)
    def lab_start(body: StartIn, session: Session = Depends(lab_session)):
        return lab.start(app.state.backend, session, body.prompt, body.chat, body.resume, body.cache)

    @app.post("/api/lab/step", response_model=StepOut | None, responses=ERRORS)
    def lab_step(body: StepIn, session: Session = Depends(lab_session)):
        record = lab.step(app.state.backend, session, body.sampler, body.show)
        return None if record is None else record.to_json()

    @app.post("/api/lab/run", responses={200: {"content": {"text/event-stream": {}}}, **ERRORS})
    def lab_run(body: RunIn, request: Request):
        session = app.state.sessions.get(request.cookies.get(COOKIE))
        if not session.started:
            raise UsageError("the lab has no prompt yet: type one and press Start")
        return stream(lab.run(app.state.backend, session, body.sampler, body.show, body.max_new), session)

    @app.post("/api/lab/stop")
    def lab_stop(request: Request) -> dict:
        session = app.state.sessions.find(request.cookies.get(COOKIE))  # no cookie, no session: nothing to stop
        if session is None:
            return {"stopping": False}
        session.stop.set()
        return {"stopping": True}

    @app.post("/api/lab/branch", response_model=LabOut, responses=ERRORS)
    def lab_branch(body: BranchIn, session: Session = Depends(lab_session)):
        return lab.branch(app.state.backend, session, body.step, body.token_id)

    @app.get("/api/lab/export", responses={200: {"content": {"application/x-ndjson": {}}}})
    def lab_export(request: Request):
        session = app.state.sessions.get(request.cookies.get(COOKIE))
        headers = {"Content-Disposition": 'attachment; filename="tokenloop-run.jsonl"'}
        response = StreamingResponse(lab.export(session), media_type="application/x-ndjson", headers=headers)
        remember(response, session)
        return response

    @app.post("/api/compare", responses=ERRORS)
    def compare(body: CompareIn) -> dict:
        if app.state.compare is None:
            raise UsageError(
                "nothing to compare with: start the app with --url to put a server beside the embedded model"
            )
        return {"a": side(app.state.backend, body), "b": side(app.state.compare, body)}

    @app.post("/api/score", response_model=ScoreOut, responses=ERRORS)
    def score_(body: ScoreIn):
        b = local(app)
        if b is None:
            raise UsageError(
                "score mode needs a model running in this process: start `tokenloop lesson` on the embedded model, or with --url to keep the embedded model beside the server"
            )
        return score.score(b, body.text)

    @app.post("/api/teacher", responses={200: {"content": {"text/event-stream": {}}}, **ERRORS})
    def ask(body: TeacherIn):
        b = chatty(app)
        if b is None:
            raise UsageError(f"{app.state.backend.model} has no chat template, so it cannot answer as a teacher")
        lesson = app.state.lesson if body.lesson is None else content.load(body.lesson)
        conversation = teacher.messages(lesson, body.question, [t.model_dump() for t in body.history])
        text = teacher.prepare(b, conversation, body.max_new)
        events = (("text", {"text": piece}) for piece in text)
        return stream(chain([("model", {"model": b.model, "backend": b.name})], events, [("done", {"done": True})]))

    @app.get("/api/training")
    def training_last() -> dict:
        return {"result": app.state.demos["training"].last}

    @app.post("/api/training", responses={409: {"model": ErrorOut}, **ERRORS})
    def training(body: TrainingIn) -> dict:
        return {"result": app.state.demos["training"].run(local(app), steps=body.steps)}

    @app.get("/api/staircase")
    def staircase_last() -> dict:
        return {"result": app.state.demos["staircase"].last}

    @app.post("/api/staircase", responses={409: {"model": ErrorOut}, **ERRORS})
    def staircase(body: StaircaseIn) -> dict:
        return {
            "result": app.state.demos["staircase"].run(
                local(app), max_len=body.max_len, points=body.points, repeats=body.repeats
            )
        }


def chain(*parts):
    for part in parts:
        yield from part
