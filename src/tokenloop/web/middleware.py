"""The app's guard at the door, before any route: requests from other sites are refused, whatever
their method (an `<img>` on another page sends a GET), except a link to a page or its static files,
which hold no state; bodies over `MAX_BODY` are refused (chunked or not), and so is a body that
takes over `BODY_TIMEOUT_S` to arrive (a slow client holds no connection open: uvicorn has no read
timeout of its own);
every answer carries
headers that keep the page from running anything it did not ship (`Guard`), and, where the app
is told its host names, a request for any other host is refused (`install`: TrustedHost)."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .errors import refusal

MAX_BODY = 256 * 1024  # bytes: every request of the page is far smaller
BODY_TIMEOUT_S = 15.0  # seconds a whole request body may take to arrive (256 KiB needs far less)
PAGES = ("/", "/lab")  # what a link from another site may open: pages that create, change or evict nothing


def install(app: FastAPI, allowed_hosts: list[str] | None, body_timeout_s: float | None = None) -> None:
    app.add_middleware(Guard, body_timeout_s=body_timeout_s or BODY_TIMEOUT_S)
    if allowed_hosts:  # a page on another site can't reach us through a rebound DNS name
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)


class Guard:
    """Plain ASGI middleware: refuse requests from other sites (but a link to a page), bodies over
    MAX_BODY (read here up to the limit, chunked or not) or slower than BODY_TIMEOUT_S, and add headers that keep the page from
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

    def __init__(self, app, body_timeout_s: float = BODY_TIMEOUT_S):
        self.app = app
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if cross_site(headers) and not page(scope):
            response = refusal(scope["path"], "refused: a request from another site can't change the lab", 403)
            return await response(scope, receive, send)
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return await too_large(scope, receive, send)
        # Read the body here, whatever its transfer encoding (a chunked upload names no length),
        # and stop at the limit: the app never holds more than MAX_BODY of it.
        chunks, size = [], 0
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                return await too_slow(scope, send, self.body_timeout_s)
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


def page(scope) -> bool:
    """A page or one of its files, read (a link or an image from another site may load these)."""
    path = scope["path"]
    return scope["method"] in ("GET", "HEAD") and (path in PAGES or path.startswith("/static/"))


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
    response = refusal(scope["path"], f"the request body is over {MAX_BODY // 1024} KiB: send less text", 413)
    await response(scope, receive, send)


async def too_slow(scope, send, seconds: float):
    """The body stopped arriving: answer 408 and close (the client's later pieces are not read)."""
    message = f"the request body took over {seconds:g} s to arrive: send it whole"
    response = refusal(scope["path"], message, 408, headers={"connection": "close"})
    await response(scope, _nothing_more, send)


async def _nothing_more():
    return {"type": "http.disconnect"}
