"""Server-sent events: a generator of (event, data) pairs as a streamed HTTP response; and how a
route learns that its client has left (`gone`), which a stream alone notices only when its
producer next hands it something: too late where one forward pass over a long prompt takes minutes."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from ..errors import TokenloopError

log = logging.getLogger("tokenloop.web")


def sse(events: Iterator[tuple[str, dict]]) -> Iterator[str]:
    """Server-sent events; an error after the stream started becomes an `error` event."""
    try:
        for event, data in events:
            yield f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
    except TokenloopError as e:
        yield f"event: error\ndata: {json.dumps({'error': str(e)})}\n\n"
    except Exception as e:  # a bug must not leave the page waiting on a dead stream
        log.exception("stream failed")
        yield f"event: error\ndata: {json.dumps({'error': f'internal error ({type(e).__name__}): see the server log'})}\n\n"


def response(events: Iterator[tuple[str, dict]], gone: threading.Event | None = None) -> StreamingResponse:
    return Watched(sse(events), gone, media_type="text/event-stream", headers={"Cache-Control": "no-store"})


class Watched(StreamingResponse):
    """A stream that sets `gone` when its client leaves (or the stream ends): the producer checks
    it between two forward passes, so the model is free again within one piece of a prompt."""

    def __init__(self, content, gone: threading.Event | None = None, **options):
        super().__init__(content, **options)
        self.gone = gone if gone is not None else threading.Event()

    async def __call__(self, scope, receive, send):
        watcher = asyncio.ensure_future(left(receive, self.gone))
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.gone.set()  # over either way: whatever still runs for it stops
            watcher.cancel()


async def finished(request: Request, work: Callable, gone: threading.Event):
    """`work()` in a worker thread, with `gone` set if the client leaves before it ends."""
    watcher = asyncio.ensure_future(left(request.receive, gone))
    try:
        return await run_in_threadpool(work)
    finally:
        watcher.cancel()


async def left(receive, gone: threading.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()
