"""The one HTTP client for every server call: JSON requests, server-sent-event streams, and the
errors a user sees when a server is unreachable, refuses, stalls or breaks off.

`timeout` is a deadline for a whole answer (and, in a stream, for each event), not for each
read: a server that trickles a byte a second can't hold a request open past it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from ...errors import ServerError, UsageError, raise_if_interrupted
from . import wire

ENV_URL = "$OPENAI_BASE_URL"  # where the URL came from when no --url was given: messages name it


def base_url(url: str, source: str = "--url") -> str:
    """The server's root: 'http://host:8000/v1/' -> 'http://host:8000' (OpenAI paths add /v1).
    `source`: what the user set (--url, or $OPENAI_BASE_URL), named in the messages."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{source} {url}: give an http(s) URL, e.g. http://localhost:8000/v1")
    try:
        parsed = httpx.URL(url)
        parsed.port  # noqa: B018 - a port that is not a number fails here
    except (httpx.InvalidURL, ValueError) as e:
        raise UsageError(f"{source} {url}: not a valid URL ({reason(e)}); e.g. http://localhost:8000/v1") from None
    if not parsed.host:
        raise UsageError(f"{source} {url}: the URL names no host; e.g. http://localhost:8000/v1")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def reason(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:120]


class Refused(ServerError):
    """The server answered with an HTTP error; `status` and the server's own `message` kept."""

    def __init__(self, message: str, status: int, server_message: str, step: int | None = None):
        super().__init__(message, step)
        self.status, self.server_message = status, server_message


class Client:
    """One kept-alive connection to a server's root URL."""

    def __init__(
        self,
        root: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        keep_alive: bool = True,
        source: str = "--url",
    ):
        if not (timeout > 0) or timeout != timeout or timeout == float("inf"):
            raise UsageError(f"--server-timeout must be a number of seconds above 0, not {timeout}")
        self.root, self.timeout, self.source = root, timeout, source
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits() if keep_alive else httpx.Limits(max_keepalive_connections=0)  # off: only to measure it
        self.http = httpx.Client(
            base_url=root, headers=headers, limits=limits, timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0))
        )

    def close(self) -> None:
        self.http.close()

    # --- plain requests ------------------------------------------------------------------------
    def call(self, method: str, path: str, body: dict | None = None, step: int | None = None) -> Any:
        """The JSON answer to one request; an HTTP error is `Refused`, anything else a `ServerError`."""
        status, data, text = self._request(method, path, body, step)
        if status >= 400:
            raise self.refused(status, data, text, path, step)
        if 300 <= status < 400:
            raise ServerError(
                f"{self.root}{path} redirects ({status}) to {self._moved or 'another address'}: tokenloop does not "
                f"follow redirects; give the address it names as {self.source}",
                step,
            )
        if data is _NOT_JSON:
            raise ServerError(
                f"{self.root}{path} answered something that is not JSON: is {self.source} an OpenAI-compatible server?",
                step,
            )
        return data

    def quiet(self, method: str, path: str, body: dict | None = None) -> Any:
        """A call whose failure only means "not this kind of server" (used while finding out)."""
        try:
            status, data, _ = self._request(method, path, body, None)
        except ServerError:
            return None
        return None if status >= 400 or data is _NOT_JSON else data

    def text(self, path: str, limit: int | None = None) -> str | None:
        """A plain-text GET (e.g. Prometheus `/metrics`): its text, or None when the server has no
        such page, or (with `limit`) a page over `limit` bytes: what is optional is never read
        unbounded, and never ends a run."""
        try:
            status, _, text = self._request("GET", path, None, None, limit=limit or MAX_ANSWER, parse=False)
        except _TooLarge:
            return None
        return None if status >= 300 else text

    def status(self, path: str) -> int:
        """The HTTP status of a GET (e.g. `/health`: 200 healthy, 404 none there, 503 not ready)."""
        return self._request("GET", path, None, None)[0]

    _moved: str | None = None  # the Location of the last redirect answered

    def _request(
        self, method: str, path: str, body: dict | None, step: int | None, limit: int = 0, parse: bool = True
    ) -> tuple[int, Any, str]:
        raise_if_interrupted()  # every request starts here or in events()
        for attempt in range(2):
            try:
                with self.http.stream(method, path, json=body) as response:
                    self._moved = wire.clean_text(response.headers.get("location", ""))[:200] or None
                    raw = _read_all(response, time.monotonic() + self.timeout, limit or MAX_ANSWER)
                break
            except _TooLarge as e:
                if limit:
                    raise
                raise ServerError(
                    f"{self.root}{path} answered more than {e.limit >> 20} MB: no answer tokenloop reads is that "
                    f"large; is {self.source} an OpenAI-compatible server?",
                    step,
                ) from None
            except httpx.RemoteProtocolError:  # a kept-alive connection the server had closed: once more, anew
                if attempt:
                    raise self._broken(path, step, "the connection closed") from None
            except (_Late, httpx.TimeoutException):
                raise self._late(path, step) from None
            except httpx.ConnectError as e:
                raise self._unreachable(e, step) from None
            except httpx.HTTPError as e:
                raise self._broken(path, step, reason(e)) from None
        if not parse:
            return response.status_code, None, raw.decode("utf-8", errors="replace")
        return (response.status_code, *_parsed(raw))

    # --- streams --------------------------------------------------------------------------------
    @contextmanager
    def events(self, path: str, body: dict, step=lambda: None) -> Iterator[Iterator[dict]]:
        """A server-sent-events stream: `with client.events(...) as chunks: for chunk in chunks`.
        Each `data:` line is one JSON object; the stream ends at `data: [DONE]` (a stream that
        closes without it raises). Leaving the block closes the connection, so a reader that
        stops early stops the server's work too. `step()` names the step an error is at."""
        raise_if_interrupted()
        try:
            # One stream per connection: some servers close it after the stream, so it is not reused.
            with self.http.stream("POST", path, json=body, headers={"Connection": "close"}) as response:
                if response.status_code >= 400:
                    data, text = _parsed(_read_all(response, time.monotonic() + self.timeout, MAX_ANSWER))
                    raise self.refused(response.status_code, data, text, path, step())
                yield self._chunks(response, path, step)
        except _TooLarge as e:
            raise ServerError(
                f"the stream from {self.root} sent a line over {e.limit >> 20} MB: no event tokenloop reads is that "
                f"large; is {self.source} an OpenAI-compatible server?",
                step(),
            ) from None
        except (_Late, httpx.TimeoutException):
            raise ServerError(
                f"{self.root} sent nothing for {self.timeout:g} s: the server is stuck or overloaded "
                "(raise --server-timeout to wait longer)",
                step(),
            ) from None
        except httpx.ConnectError as e:
            raise self._unreachable(e, step()) from None
        except httpx.HTTPError as e:
            raise ServerError(
                f"the stream from {self.root} broke off ({reason(e)}): the server may have crashed", step()
            ) from None

    def _chunks(self, response: httpx.Response, path: str, step) -> Iterator[dict]:
        for line in _lines(response, self.timeout):
            if not line.startswith(("data:", "error:")):
                continue
            payload = line.split(":", 1)[1].strip()
            if payload == "[DONE]":
                return
            try:
                chunk = json.loads(payload)
            except (ValueError, RecursionError):
                raise ServerError(f"the stream sent something that is not JSON: {payload[:80]!r}", step()) from None
            if line.startswith("error:") or (isinstance(chunk, dict) and "error" in chunk):
                error = chunk.get("error", chunk) if isinstance(chunk, dict) else chunk
                raise ServerError(f"the server stopped the stream: {wire.error_message(0, {'error': error})}", step())
            if not isinstance(chunk, dict):
                raise ServerError(
                    f"the stream sent a {type(chunk).__name__} where an object belongs: {payload[:80]!r}", step()
                )
            yield chunk
        raise ServerError(
            f"the stream from {self.root} ended without its closing [DONE]: the server may have crashed", step()
        )

    # --- errors ---------------------------------------------------------------------------------
    def refused(self, status: int, data: Any, text: str, path: str, step: int | None) -> Refused:
        said = wire.error_message(status, None if data is _NOT_JSON else data, text if data is _NOT_JSON else "")
        if status in (401, 403):
            message = (
                f"the server refused the request ({status}: {said}): pass its key with --api-key or OPENAI_API_KEY"
            )
        elif status == 404:
            message = f"{self.root}{path} not found (404): check {self.source}; give the server's base URL, e.g. http://localhost:8000/v1"
        else:
            message = f"the server answered {status} on {path}: {said}"
        return Refused(message, status, said, step)

    def _unreachable(self, error: Exception, step: int | None) -> ServerError:
        return ServerError(
            f"can't reach {self.root} ({reason(error)}): is the server running? check {self.source}", step
        )

    def _late(self, path: str, step: int | None) -> ServerError:
        return ServerError(
            f"{self.root} gave no answer within {self.timeout:g} s on {path}: the server is stuck or "
            "overloaded (raise --server-timeout to wait longer)",
            step,
        )

    def _broken(self, path: str, step: int | None, why: str) -> ServerError:
        return ServerError(f"the server at {self.root} stopped answering on {path} ({why}): it may have crashed", step)


_NOT_JSON = object()
MAX_ANSWER = 64 << 20  # no answer the loop needs is near this: a larger one is refused, not held in memory


def _parsed(raw: bytes) -> tuple[Any, str]:
    """(the JSON value, or _NOT_JSON; the text) of an answer's bytes."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text), text
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's parser goes
        return _NOT_JSON, text


class _Late(Exception):
    """The deadline passed while bytes were still trickling in."""


class _TooLarge(Exception):
    """An answer (or one stream line) grew past its limit: reading stopped there."""

    def __init__(self, limit: int):
        super().__init__(f"over {limit} bytes")
        self.limit = limit


def _read_all(response: httpx.Response, deadline: float, limit: int) -> bytes:
    parts, size = [], 0
    for part in response.iter_bytes():
        parts.append(part)
        size += len(part)
        if size > limit:
            raise _TooLarge(limit)
        if time.monotonic() > deadline:
            raise _Late()
    if time.monotonic() > deadline:
        raise _Late()
    return b"".join(parts)


_EOL = re.compile(rb"\r\n|\r|\n")  # SSE ends a line with any of the three


def _lines(response: httpx.Response, timeout: float) -> Iterator[str]:
    """The stream's lines, each within `timeout` of the one before (a trickle can't stretch it).
    Only each new part is searched for line ends, so a long line costs its length once, not its
    length times its parts. (A CRLF split between two parts reads as an extra empty line, which
    SSE ignores.)"""
    pending = bytearray()
    deadline = time.monotonic() + timeout
    for part in response.iter_bytes():
        pieces = _EOL.split(part)
        if len(pieces) == 1:
            pending += part
            if len(pending) > MAX_ANSWER:
                raise _TooLarge(MAX_ANSWER)
            if time.monotonic() > deadline:
                raise _Late()
            continue
        deadline = time.monotonic() + timeout
        pending += pieces[0]
        yield pending.decode("utf-8", errors="replace")
        for line in pieces[1:-1]:
            yield line.decode("utf-8", errors="replace")
        pending = bytearray(pieces[-1])
    if pending:
        yield pending.decode("utf-8", errors="replace")
