"""The web layer's one error edge: which HTTP status each error is, how the OpenAPI docs name the
error answers, the two shapes an error body takes, and the handlers that write them.

- `STATUS`: the error→status map, for every route (the app's own and the OpenAI-compatible ones);
- `ERRORS`: the `responses=` docs a route adds for its 4xx/5xx answers (`BUSY` adds the 409);
- the app's body, `{"error": "..."}` (`install`: the exception handlers of `create_app`, FastAPI's
  own refusals included: a body it can't parse, a path that isn't there);
- OpenAI's body, `{"error": {"message", "type", "param", "code"}}`, for `/v1/…`, `/tokenize` and
  `/detokenize` (`OpenAIErrors`, their routes' class), so a client written for vLLM reads ours.

Library code raises (`tokenloop.errors`); only this module turns an error into an answer.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from ..errors import ModelError, ServerError, TokenloopError, UsageError
from .completions import Overtime, UnknownModel
from .schemas import ErrorOut

log = logging.getLogger("tokenloop.web")


class Unavailable(TokenloopError):
    """The demo's module is not part of this install, or the backend cannot run it."""


class Busy(TokenloopError):
    """The demo is already running for another request."""


# First match wins: a subclass before its base (UnknownModel is a UsageError).
STATUS = {
    UnknownModel: 404,
    UsageError: 400,
    Busy: 409,
    ServerError: 502,
    ModelError: 503,
    Unavailable: 503,
    Overtime: 503,
}
ERRORS = {
    400: {"model": ErrorOut, "description": "bad input, with a message that says what to do"},
    503: {"model": ErrorOut, "description": "not available with this backend or install"},
}
BUSY = {409: {"model": ErrorOut}, **ERRORS}  # a demo that runs one at a time
STREAM = {200: {"content": {"text/event-stream": {}}}}  # a route that answers server-sent events
OPENAI_TYPES = {
    400: "BadRequestError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
}
INTERNAL = "internal error ({}): see the terminal running tokenloop lesson"
UNREADABLE = "the body is not JSON this app can read (nested too deep, or not JSON at all): send a flat JSON object"


def status_of(error: TokenloopError) -> int:
    return next((code for cls, code in STATUS.items() if isinstance(error, cls)), 500)


# --- the app's shape: {"error": "..."} -----------------------------------------------------------
def install(app: FastAPI) -> None:
    """The app's exception handlers: its own errors by `STATUS`, bad input as 422, a bug as 500."""

    @app.exception_handler(TokenloopError)
    async def tokenloop_error(request: Request, error: TokenloopError):
        return JSONResponse({"error": str(error)}, status_of(error))

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception):  # still logged with its traceback by the server
        return JSONResponse({"error": INTERNAL.format(type(error).__name__)}, 500)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError):
        return JSONResponse(invalid(error), 422)

    @app.exception_handler(HTTPException)  # FastAPI's own refusals: a body it can't parse, no such page
    async def refused(request: Request, error: HTTPException):
        words = UNREADABLE if error.status_code == 400 else str(error.detail)
        return JSONResponse({"error": words}, error.status_code, headers=error.headers)


def invalid(error: RequestValidationError) -> dict:
    """Where and what, never the input itself: an error reply doesn't echo the request (nor a
    non-finite number, which JSON can't hold)."""
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
    return {"error": f"{where}: {first['msg']}", "detail": detail}


# --- OpenAI's shape: {"error": {"message", "type", "param", "code"}} -----------------------------
def openai_body(error: Exception) -> tuple[int, dict]:
    """The status and OpenAI-shaped body of an error (a bug is logged here, then named only)."""
    if isinstance(error, TokenloopError):
        code, message = status_of(error), str(error)
    else:
        log.error("the completion failed", exc_info=error)
        code, message = 500, INTERNAL.format(type(error).__name__)
    kind = OPENAI_TYPES.get(code, "InternalServerError")
    return code, {"error": {"message": message, "type": kind, "param": None, "code": code}}


OPENAI_PATHS = ("/v1/", "/tokenize", "/detokenize")  # the routes that answer in OpenAI's shape


def refusal(path: str, message: str, status: int, headers: dict | None = None) -> JSONResponse:
    """A refusal made before any route (by the guard at the door), in the shape that path's route
    answers in: OpenAI's for /v1/…, /tokenize and /detokenize, the app's for the rest."""
    if path.startswith(OPENAI_PATHS):
        kind = OPENAI_TYPES.get(status, "BadRequestError")
        body: dict = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    else:
        body = {"error": message}
    return JSONResponse(body, status, headers=headers)


class OpenAIErrors(APIRoute):
    """A route whose every error (its dependencies' included) answers in OpenAI's shape."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def answer(request: Request):
            try:
                return await handler(request)
            except Exception as error:
                code, body = openai_body(error)
                return JSONResponse(body, code)

        return answer
