"""The lesson app's OpenAI-compatible routes: `GET /v1/models`, `POST /v1/completions`, and
vLLM's `/tokenize` and `/detokenize`, answered by the model in this process (`completions.py`).

Errors come in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, not the rest
of the app's `{"error": "..."}`: a client written for vLLM reads them as it reads vLLM's. The
Guard (other sites refused, bodies over 256 KiB refused) covers these routes like every other.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from ..errors import ModelError, ServerError, TokenloopError, UsageError
from . import completions

router = APIRouter(tags=["OpenAI-compatible teaching endpoint"])
log = logging.getLogger("tokenloop.web")
STARTED = int(time.time())
STATUS = {completions.UnknownModel: 404, UsageError: 400, ServerError: 502, ModelError: 503}
TYPES = {400: "BadRequestError", 404: "NotFoundError", 502: "BadGatewayError", 503: "ServiceUnavailableError"}


def error_body(error: Exception) -> tuple[int, dict]:
    if isinstance(error, TokenloopError):
        code, message = next((c for cls, c in STATUS.items() if isinstance(error, cls)), 500), str(error)
    else:
        log.error("the completion failed", exc_info=error)
        code, message = 500, f"internal error ({type(error).__name__}): see the terminal running tokenloop lesson"
    return code, {
        "error": {"message": message, "type": TYPES.get(code, "InternalServerError"), "param": None, "code": code}
    }


def refused(error: Exception) -> JSONResponse:
    code, body = error_body(error)
    return JSONResponse(body, code)


def model_of(request: Request):
    """The model running in this process (beside a --url server, the embedded one)."""
    state = request.app.state
    found = next((b for b in (state.backend, state.compare) if b is not None and b.full_vocab), None)
    if found is None:
        raise ModelError(
            "no model runs in this process: start `tokenloop lesson` without --url, or with the embedded model"
        )
    return found


async def json_of(request: Request):
    try:
        return json.loads(await request.body())
    except ValueError:
        raise UsageError('the body is not JSON: send e.g. {"prompt": "Kubernetes pods are", "max_tokens": 1}') from None


def events(call: completions.Call) -> Iterator[str]:
    """Server-sent events as vLLM sends them: `data: {chunk}` lines, then `data: [DONE]`."""
    try:
        for chunk in call.chunks():
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
    except Exception as error:  # after the first byte the status is sent: the error goes in the stream
        yield f"data: {json.dumps(error_body(error)[1])}\n\n"
    yield "data: [DONE]\n\n"


@router.get("/v1/models")
def list_models(request: Request):
    try:
        return completions.models(model_of(request), STARTED)
    except TokenloopError as error:
        return refused(error)


@router.post("/v1/completions")
async def complete(request: Request):
    try:
        body = completions.parse(await json_of(request))
        backend = model_of(request)
        completions.check_model(backend, body)
        call = await run_in_threadpool(completions.Call, backend, body)  # tokenizes: off the event loop
        if body.stream:
            return StreamingResponse(
                events(call), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
            )
        return await run_in_threadpool(call.whole)
    except Exception as error:
        return refused(error)


@router.post("/tokenize")
async def tokenize(request: Request):
    try:
        body = completions.read(completions.TokenizeIn, await json_of(request))
        return await run_in_threadpool(completions.tokenize, model_of(request), body)
    except Exception as error:
        return refused(error)


@router.post("/detokenize")
async def detokenize(request: Request):
    try:
        body = completions.read(completions.DetokenizeIn, await json_of(request))
        return await run_in_threadpool(completions.detokenize, model_of(request), body)
    except Exception as error:
        return refused(error)
