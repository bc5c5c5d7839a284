"""Hostile requests to the web app (issue 30's third round), each class over a table or generated
inputs rather than the one case that was found: no request from another site reaches any route
but a page (whatever its method), a GET makes and evicts no session, a token id from a client is
checked before the session changes, an unreadable body is a 4xx in the route's own error shape,
and a body that arrives too slowly is refused. All on the tiny real model; the slow body on a
real uvicorn (the test client can't trickle a body).

Modules (src/tokenloop/): web/middleware.py, web/deps.py, web/lab.py, web/errors.py, web/events.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.launcher import free_port

from tokenloop.web import create_app
from tokenloop.web.errors import OPENAI_PATHS
from tokenloop.web.sessions import COOKIE

CROSS = [
    {"sec-fetch-site": "cross-site"},
    {"sec-fetch-site": "same-site"},  # another port or subdomain of the same site is another origin
    {"origin": "https://evil.example"},
    {"origin": "null"},  # a sandboxed frame or a file:// page
    {"origin": "http://testserver.evil.example"},
]
HOSTILE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def routes(app) -> list[tuple[str, str]]:
    """Every (method, path) the app answers, the OpenAI-compatible ones included (from its own spec)."""
    return sorted((method.upper(), path) for path, methods in app.openapi()["paths"].items() for method in methods)


@pytest.fixture
def app(tiny):
    return create_app(tiny, demo={"steps": 2, "max_len": 16, "points": 2, "repeats": 1, "teacher_max_new": 4})


@pytest.fixture
def learner(app):
    """A learner with a run of two steps, and the app's sessions as they stand."""
    client = TestClient(app)
    assert client.post("/api/lab/start", json={"prompt": "The scheduler places pods"}).status_code == 200
    for _ in range(2):
        assert client.post("/api/lab/step", json={}).status_code == 200
    return client


# --- Data lost: other sites -------------------------------------------------------------------
def test_no_request_from_another_site_reaches_any_route_whatever_its_method(app, learner):
    before = (len(app.state.sessions), learner.get("/api/lab").json())
    table = routes(app)
    assert len(table) >= 30 and ("GET", "/api/lab") in table and ("POST", "/v1/completions") in table
    stranger = TestClient(app)
    for method, path in table:
        for headers in CROSS:
            answer = stranger.request(method, path, headers=headers, json={})
            assert answer.status_code == 403, (method, path, headers, answer.text)
            error = answer.json()["error"]
            assert "another site" in (error["message"] if path.startswith(OPENAI_PATHS) else error)
    assert (len(app.state.sessions), learner.get("/api/lab").json()) == before  # nothing made, changed or evicted


def test_a_link_from_another_site_still_opens_the_pages(app):
    navigation = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document"}
    for path in ("/", "/lab", "/lab?prompt=hi", "/static/lab.js"):
        assert TestClient(app).get(path, headers=navigation).status_code == 200, path
    assert len(app.state.sessions) == 0  # opening a page makes no session either


@HOSTILE
@given(gets=st.lists(st.sampled_from(["/api/lab", "/api/lab/export", "/api/live/kept", "/api/training"]), max_size=80))
def test_cookieless_gets_make_no_session_and_evict_none(tiny, gets):
    """What 33 `<img>` tags on another page did (no Sec-Fetch headers here: an old browser)."""
    app = create_app(tiny, max_sessions=2)
    learner = TestClient(app)
    learner.post("/api/lab/start", json={"prompt": "hello"})
    mine = learner.cookies[COOKIE]
    for path in gets:
        answer = TestClient(app).get(path)
        assert answer.status_code == 200 and COOKIE not in answer.cookies, path
    assert len(app.state.sessions) == 1 and mine in app.state.sessions


# --- Data lost: token ids from a client ---------------------------------------------------------
IDS = st.lists(
    st.one_of(st.integers(), st.integers(-3, 400), st.sampled_from([-1, 299, 300, 2**63, -(2**63)])), max_size=6
)


@HOSTILE
@given(ids=IDS)
def test_token_ids_from_a_client_are_checked_before_anything_changes(app, learner, tiny, ids):
    before = learner.get("/api/lab").json()
    valid = all(0 <= i < tiny.vocab_size for i in ids)
    answer = learner.post("/api/lab/start", json={"prompt": "hi", "resume": ids})
    if valid and len(ids) < 60:
        assert answer.status_code == 200 and [s["chosen"]["id"] for s in answer.json()["steps"]] == ids
        learner.post(
            "/api/lab/start", json={"prompt": before["prompt"], "resume": [s["chosen"]["id"] for s in before["steps"]]}
        )
    else:
        assert answer.status_code in (400, 422) and isinstance(answer.json()["error"], str), answer.text
        assert learner.get("/api/lab").json() == before  # refused: the run is as it was, and still usable
    assert learner.post("/api/lab/step", json={}).status_code == 200
    learner.post("/api/lab/branch", json={"step": 1, "token_id": before["steps"][0]["chosen"]["id"]})
    for path, body in (("/detokenize", {"tokens": ids}), ("/v1/completions", {"prompt": ids or [1], "max_tokens": 1})):
        answer = learner.post(path, json=body)
        assert answer.status_code in (200, 400), answer.text
        if answer.status_code == 400:
            assert not valid and "vocabulary" in answer.json()["error"]["message"]


# --- 500s: bodies no route can read ---------------------------------------------------------------
DEEP = 100_000
BODIES = {
    "a list nested 100,000 deep": b"[" * DEEP + b"]" * DEEP,
    "an object nested 100,000 deep": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "a nested prompt": b'{"prompt": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    "an unpaired surrogate in the prompt": b'{"prompt": "caf\\ud800"}',
    "a low surrogate alone": b'{"prompt": "\\udc00", "question": "\\udc00", "text": "\\udc00"}',
    "a surrogate in a key": b'{"\\ud800": 1}',
    "bytes that are not UTF-8": b'{"prompt": "caf\xe9"}',
    "JSON cut short": b'{"prompt": "hi"',
}


@pytest.mark.parametrize("name", BODIES)
def test_an_unreadable_body_is_a_4xx_in_the_routes_own_shape(app, name):
    client = TestClient(app)
    spec = app.openapi()["paths"]  # the OpenAI-compatible routes read their bodies by hand: no requestBody
    for path in [
        p
        for p, methods in spec.items()
        if "post" in methods and ("requestBody" in methods["post"] or p.startswith(OPENAI_PATHS))
    ]:
        answer = client.post(path, content=BODIES[name], headers={"content-type": "application/json"})
        assert 400 <= answer.status_code < 500, (path, name, answer.status_code, answer.text[:200])
        error = answer.json()["error"]
        assert isinstance(error["message"] if path.startswith(OPENAI_PATHS) else error, str), (path, answer.text[:200])
        assert "\ud800" not in answer.text and "caf" not in answer.text  # never echoed


def test_fastapis_own_refusals_come_in_the_apps_shape(app):
    client = TestClient(app)
    assert client.get("/api/no-such-route").json() == {"error": "Not Found"}
    assert client.request("DELETE", "/api/lab").json() == {"error": "Method Not Allowed"}


# --- Hang: a body that never finishes -------------------------------------------------------------
@pytest.fixture
def uvicorn_port(tiny):
    """The app on a real uvicorn, with a 1 s body deadline."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(tiny, body_timeout_s=1.0), port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("sent", [b"", b'{"prompt": "h', b'{"prompt":'])
def test_a_body_slower_than_the_deadline_is_refused_and_the_connection_closed(uvicorn_port, sent):
    with socket.create_connection(("127.0.0.1", uvicorn_port), timeout=10) as conn:
        conn.sendall(
            b"POST /api/next HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + sent
        )
        start, answer = time.monotonic(), b""
        while chunk := conn.recv(4096):  # the server closes it: recv returns b""
            answer += chunk
        took = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408") and 0.9 < took < 5, (answer[:200], took)
    assert "took over 1 s" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]


# --- Hang: one request holding the model ----------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("prompt", ["The scheduler places pods", [5, 6, 7, 8, 9, 10, 11, 12]])
def test_a_completion_past_its_time_stops_and_says_so_in_openais_shape(tiny, stream, prompt):
    app = create_app(tiny, demo={"completion_s": 0.0})  # no time at all: stopped before its first pass
    answer = TestClient(app).post("/v1/completions", json={"prompt": prompt, "max_tokens": 4, "stream": stream})
    if stream:  # the status went out with the first byte: the error is an event, then [DONE]
        chunks = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")]
        error = chunks[-1]["error"]
        assert answer.text.rstrip().endswith("data: [DONE]")
    else:
        assert answer.status_code == 503
        error = answer.json()["error"]
    assert error["code"] == 503 and "ran past this teaching endpoint's 0 s" in error["message"]
    ok = TestClient(create_app(tiny)).post("/v1/completions", json={"prompt": prompt, "max_tokens": 4})
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 4  # the model is free


def test_the_teachers_model_stops_when_its_time_is_up_or_the_page_goes(tiny):
    from tokenloop.web import teacher

    ids = tiny.encode("Explain the KV cache")
    assert list(teacher.pieces(tiny, ids, 8, going=lambda: False)) == [teacher.Ended("time")]
    events = list(teacher.bounded(teacher.pieces(tiny, ids, 8, going=lambda: False), 8, 45, clock=lambda: 0.0))
    assert [e for e, _ in events] == ["cut", "done"] and events[0][1]["why"] == "time"
