"""Server-sent events: a generator of (event, data) pairs as a streamed HTTP response."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

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


def response(events: Iterator[tuple[str, dict]]) -> StreamingResponse:
    return StreamingResponse(sse(events), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
