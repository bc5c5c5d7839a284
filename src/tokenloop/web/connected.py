"""Routes about the connected server, and the teacher's citations (an APIRouter the app includes):

- `GET /api/cluster`: with --url, what `tokenloop probe` finds out about the server (engine and
  version, model, context, logprob cap, raw or processed logprobs, prefix caching), probed once;
- `GET`/`POST /api/server-staircase`: step 5 measured on the server itself (`server_staircase`);
- `POST /api/teacher/cite`: the lesson's passages that answer a question best, and the live
  action it asks for (`teacher.cite`), before the model's own answer streams from /api/teacher.
"""

from __future__ import annotations

import threading

from fastapi import APIRouter, FastAPI, Request
from pydantic import Field

from ..backends.server import metrics
from ..errors import UsageError
from ..lessons import content
from . import teacher
from .schemas import MAX_PROMPT_CHARS, ErrorOut, In

router = APIRouter()
ERRORS = {
    400: {"model": ErrorOut, "description": "bad input, with a message that says what to do"},
    503: {"model": ErrorOut, "description": "not available with this backend or install"},
}
_probing = threading.Lock()


class CiteIn(In):
    question: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    lesson: str | None = Field(None, max_length=40)  # the lesson shown (default: the app's)


class ServerStaircaseIn(In):
    max_len: int = Field(512, ge=8, le=32768)
    points: int = Field(4, ge=2, le=16)
    repeats: int = Field(2, ge=1, le=5)
    gaps: int = Field(8, ge=2, le=64)


def server(app: FastAPI):
    """The server backend this app was started with (--url), or None. Fixed at start."""
    backend = app.state.backend
    return backend if app.state.server_url and not backend.in_process else None


def facts(backend, prompt: str) -> dict:
    """The probe's findings in the words the page shows (each None where the server won't say)."""
    caps = backend.probe(prompt)
    snapshot = metrics.scrape(backend.client)
    config = (snapshot.info("cache_config") if snapshot else None) or {}
    caching = config.get("enable_prefix_caching")
    return {
        "url": caps.url,
        "engine": caps.kind,
        "version": caps.version,
        "model": caps.model,
        "models": caps.models,
        "context_length": caps.context_length,
        "max_logprobs": caps.max_logprobs,
        "logprobs_returned": caps.checks.get("logprobs_returned"),
        "distribution": caps.distribution.split(":")[0].split(" ")[0],  # raw, processed, after, unknown
        "distribution_detail": caps.distribution,
        "prompt_ids": caps.prompt_ids,
        "tokenizer": caps.tokenize,
        "prefix_caching": None if caching is None else caching == "True",
        "block_size": int(config["block_size"]) if str(config.get("block_size", "")).isdigit() else None,
        "request_ms": caps.checks.get("request_ms"),
    }


@router.get("/api/cluster", responses=ERRORS)
def cluster(request: Request) -> dict:
    app = request.app
    backend = server(app)
    if backend is None:
        return {"cluster": None}
    with _probing:  # probed once, by the first page that asks
        if getattr(app.state, "cluster", None) is None:
            app.state.cluster = facts(backend, app.state.lesson["prompt"])
    return {"cluster": app.state.cluster}


@router.get("/api/server-staircase")
def server_staircase_last(request: Request) -> dict:
    return {"result": request.app.state.demos["server_staircase"].last}


@router.post("/api/server-staircase", responses={409: {"model": ErrorOut}, **ERRORS})
def server_staircase(body: ServerStaircaseIn, request: Request) -> dict:
    backend = server(request.app)
    if backend is None:  # like compare: a page without a server asked for it
        raise UsageError("the server staircase needs a server: start the lesson with --url")
    demo = request.app.state.demos["server_staircase"]
    max_len = body.max_len
    if "max_len" not in body.model_fields_set:  # the page's default, shortened to fit a small server
        max_len = max(body.points, min(max_len, backend.context_length - body.gaps - 1))
    options = {"max_len": max_len, "points": body.points, "repeats": body.repeats, "gaps": body.gaps}
    return {"result": demo.run(backend, **options)}


@router.post("/api/teacher/cite", responses=ERRORS)
def cite(body: CiteIn, request: Request) -> dict:
    if not body.question.strip():
        raise UsageError("the question is empty: type a question about the lesson")
    lesson = request.app.state.lesson if body.lesson is None else content.load(body.lesson)
    return teacher.cite(lesson, body.question)
