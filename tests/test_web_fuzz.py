"""Property-based fuzzing of the web API from its own OpenAPI spec (schemathesis): whatever a
client sends, valid by the spec or not, the answer is never a 5xx.

Kept small: the tiny model, a few examples per operation and mode, a deadline per example. The
training demo's step count is clamped to 3 here (a valid 50-step run takes a minute); its bounds
are checked in test_web_api.
(schemathesis' own pytest decorator reads a pytest internal that pytest 9.2 removed, so the
operations are parametrized here and each is driven through Hypothesis directly.)
"""

from __future__ import annotations

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
