"""Property-based fuzzing of the web API from its own OpenAPI spec (schemathesis): whatever a
client sends, valid by the spec or not, the answer is never a 5xx.

Kept small: the tiny model, a few examples per operation and mode, a deadline per example. The
training demo's step count is clamped to 3 here (a valid 50-step run takes a minute); its bounds
are checked in test_web_api.
(schemathesis' own pytest decorator reads a pytest internal that pytest 9.2 removed, so the
operations are parametrized here and each is driven through Hypothesis directly.)
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tokenloop.web import create_app

SMALL = {"steps": 2, "max_len": 16, "points": 2, "repeats": 1, "teacher_max_new": 4}
# The operations, read from the spec itself (the spec does not depend on the backend). Only those
# that take a body can be sent invalid data.
SPEC = create_app(None).openapi()
OPERATIONS = [
    (method.upper(), path, mode)
    for path, methods in SPEC["paths"].items()
    for method, spec in methods.items()
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    if mode.value == "positive" or "requestBody" in spec
]


def clamp(case):
    if case.path == "/api/training" and isinstance(case.body, dict) and isinstance(case.body.get("steps", 3), int):
        case.body["steps"] = min(case.body.get("steps", 3), 3)
    return case


@pytest.fixture(scope="module")
def web_schema(tiny):
    return schemathesis.openapi.from_asgi("/api/openapi.json", create_app(tiny, demo=SMALL, max_sessions=4))


@pytest.mark.parametrize("method, path, mode", OPERATIONS, ids=[f"{m} {p} {mode.value}" for m, p, mode in OPERATIONS])
def test_no_request_gets_a_server_error(web_schema, method, path, mode):
    assert len(SPEC["paths"]) >= 15  # every route of the API is in the spec

    @given(case=web_schema[path][method].as_strategy(generation_mode=mode).map(clamp))
    @settings(
        max_examples=3,
        deadline=timedelta(seconds=20),
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case):
        response = case.call()
        assert response.status_code < 500, (
            f"{case.method} {case.path} {case.body!r:.200} -> {response.status_code}: {response.text[:300]}"
        )

    fuzz()


# --- hostile values in every field: what JSON allows that a schema generator rarely sends ---------
HOSTILE = [float("inf"), float("-inf"), float("nan"), 10**30, -(10**30), 1e308, "\ud800", "caf\udfff", "", [], {}, None]
SIMPLE = {"string": "The cat", "integer": 1, "number": 0.5, "boolean": False, "object": {}, "array": []}


def fields(schema: dict, spec: dict) -> dict[str, dict]:
    """The properties of a request body's schema (its $ref followed)."""
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema.get("properties", {})


def kind(prop: dict) -> str:
    options = prop.get("anyOf") or [prop]
    return next((o.get("type") for o in options if o.get("type") in SIMPLE), "object")


BODIES = [
    (path, fields(spec["requestBody"]["content"]["application/json"]["schema"], SPEC))
    for path, methods in SPEC["paths"].items()
    for method, spec in methods.items()
    if method == "post" and "requestBody" in spec and path != "/api/training"  # training runs the model: test_web_api
]


@pytest.mark.parametrize("path, props", BODIES, ids=[path for path, _ in BODIES])
def test_hostile_values_in_any_field_never_get_a_5xx(tiny, path, props):
    from fastapi.testclient import TestClient
    from hypothesis import strategies as st

    client = TestClient(create_app(tiny, demo=SMALL, max_sessions=4))
    client.post("/api/lab/start", json={"prompt": "The cat"})

    @given(
        field=st.sampled_from(sorted(props) + ["sampler.temperature", "sampler.top_p", "sampler.seed"]),
        value=st.sampled_from(HOSTILE),
    )
    @settings(
        max_examples=25,
        deadline=timedelta(seconds=20),
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(field, value):
        body = {name: SIMPLE[kind(prop)] for name, prop in props.items() if name in ("prompt", "text", "question")}
        outer, _, inner = field.partition(".")
        if inner:
            body[outer] = {inner: value}
        else:
            body[outer] = value
        data = json.dumps(body, allow_nan=True).encode()  # NaN, Infinity and \ud800 escapes on the wire
        response = client.post(path, content=data, headers={"content-type": "application/json"})
        assert response.status_code < 500, f"{path} {data[:200]!r} -> {response.status_code}: {response.text[:300]}"
        assert "Traceback" not in response.text

    send()
