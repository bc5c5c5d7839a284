"""The app's guard at the door, before any route: requests from other sites that would change
something are refused, bodies over `MAX_BODY` are refused (chunked or not), every answer carries
headers that keep the page from running anything it did not ship (`Guard`), and, where the app
is told its host names, a request for any other host is refused (`install`: TrustedHost)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

MAX_BODY = 256 * 1024  # bytes: every request of the page is far smaller


def install(app: FastAPI, allowed_hosts: list[str] | None) -> None:
    app.add_middleware(Guard)
    if allowed_hosts:  # a page on another site can't reach us through a rebound DNS name
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)


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
