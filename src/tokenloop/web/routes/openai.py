"""The OpenAI-compatible routes: `GET /v1/models`, `POST /v1/completions`,
`POST /v1/chat/completions`, and vLLM's `/tokenize` and `/detokenize`, answered by the model in
this process (`web/completions.py`, `web/chat.py`).

Errors come in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, not the rest
of the app's `{"error": "..."}` (`errors.OpenAIErrors`, this router's route class): a client
written for vLLM reads them as it reads vLLM's. The bodies are read here, not by FastAPI, so a
bad one is refused in that shape too. The Guard (other sites refused, bodies over 256 KiB
refused) covers these routes like every other. A request stops within one piece of its prompt
when its client leaves, and after the app's `completion_s` (`completions.Call`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from ...errors import UsageError
from .. import chat, completions, events
from ..deps import InProcess
from ..errors import OpenAIErrors, openai_body

router = APIRouter(tags=["OpenAI-compatible teaching endpoint"], route_class=OpenAIErrors)
STARTED = int(time.time())


async def json_of(request: Request):
    try:
        return json.loads(await request.body())
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than Python's stack
        raise UsageError(
            'the body is not JSON (or is nested too deep): send e.g. {"prompt": "Kubernetes pods are", "max_tokens": 1}'
        ) from None


def sse(call: completions.Call) -> Iterator[str]:
    """Server-sent events as vLLM sends them: `data: {chunk}` lines, then `data: [DONE]`."""
    try:
        for chunk in call.chunks():
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
    except Exception as error:  # after the first byte the status is sent: the error goes in the stream
        yield f"data: {json.dumps(openai_body(error)[1])}\n\n"
    yield "data: [DONE]\n\n"


@router.get("/v1/models")
def list_models(model: InProcess):
    return completions.models(model, STARTED)


@router.post("/v1/completions")
async def complete(request: Request, model: InProcess):
    body = completions.parse(await json_of(request))
    completions.check_model(model, body)
    seconds = request.app.state.demo["completion_s"]
    call = await run_in_threadpool(completions.Call, model, body, seconds)  # tokenizes: off the event loop
    if body.stream:
        return events.Watched(
            sse(call), call.gone, media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )
    return await events.finished(request, call.whole, call.gone)  # stops at the next piece if the client leaves


@router.post("/v1/chat/completions")
async def chat_complete(request: Request, model: InProcess):
    body = chat.parse(await json_of(request))
    seconds = request.app.state.demo["completion_s"]
    call = await run_in_threadpool(chat.ChatCall, model, body, seconds)  # renders the template and tokenizes
    if body.stream:
        return events.Watched(
            sse(call), call.gone, media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )
    return await events.finished(request, call.whole, call.gone)


@router.post("/tokenize")
async def tokenize(request: Request, model: InProcess):
    body = completions.read(completions.TokenizeIn, await json_of(request))
    return await run_in_threadpool(completions.tokenize, model, body)


@router.post("/detokenize")
async def detokenize(request: Request, model: InProcess):
    body = completions.read(completions.DetokenizeIn, await json_of(request))
    return await run_in_threadpool(completions.detokenize, model, body)
