"""Measurements that belong to their page (`web/jobs.py`): kept per browser session for a revisit,
joined rather than run twice, stopped when no page waits for them; and, through the app, a revisit
that measures nothing."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient

from tokenloop.web import create_app, jobs
from tokenloop.web.errors import Busy
from tokenloop.web.sessions import Session

SMALL = {"steps": 1, "max_len": 16, "points": 2, "repeats": 2, "context_len": 32, "answer_steps": 3}


class Page:
    """A request as `jobs.measured` sees it: gone once `gone` is set."""

    def __init__(self):
        self.gone = threading.Event()

    async def is_disconnected(self) -> bool:
        return self.gone.is_set()


def slow(steps: int, calls: list, step_s: float = 0.02):
    def measure(progress):
        calls.append(1)
        for i in range(steps):
            time.sleep(step_s)
            progress(i + 1, steps)
        return {"value": 42}

    return measure


def test_a_result_is_kept_in_the_session_with_its_time_and_progress_counts_steps():
    session, calls = Session("s"), []
    asker = jobs.Asker(Page(), session, "day07")
    result = asyncio.run(jobs.measured(asker, asker.key("kv_bytes"), slow(3, calls)))
    assert result["value"] == 42 and result["measured_at"] > 0
    assert jobs.kept(session, "day07") == {"results": {"kv_bytes": result}, "running": {}}
    assert jobs.kept(session, "day01")["results"] == {}  # another lesson's page sees nothing of it
    assert session.jobs["day07:kv_bytes"].to_json()["done"] == 3


def test_a_second_request_joins_the_running_measurement_instead_of_a_409():
    session, calls = Session("s"), []

    async def both():
        a = jobs.Asker(Page(), session, "day07", "page-a")
        b = jobs.Asker(Page(), session, "day07", "page-b")
        return await asyncio.gather(jobs.measured(a, "k", slow(5, calls)), jobs.measured(b, "k", slow(5, calls)))

    first, second = asyncio.run(both())
    assert first is second and len(calls) == 1


def test_a_measurement_stops_when_its_page_goes_and_keeps_nothing():
    session, calls, page = Session("s"), [], Page()
    asker = jobs.Asker(page, session, "day07")
    threading.Timer(0.1, page.gone.set).start()
    started = time.monotonic()
    with pytest.raises(Busy, match="stopped"):
        asyncio.run(jobs.measured(asker, "k", slow(500, calls)))
    job = session.jobs["k"]
    job.finished.wait(2)
    assert job.cancelled and job.done < 500 and time.monotonic() - started < 3
    assert session.kept == {}


def test_pagehide_stops_only_what_that_page_waits_for():
    session = Session("s")
    job = jobs.Job("k", pages=["mine", "other"])
    session.jobs["k"] = job
    assert jobs.stop(session, "mine") == []  # another page still waits for it
    assert jobs.stop(session, "other") == ["k"] and job.stop.is_set()
    with pytest.raises(jobs.Cancelled):
        job.progress(1, 2)


@pytest.fixture
def client(tiny):
    with TestClient(create_app(tiny, demo=SMALL)) as c:
        yield c


def test_a_revisit_gets_the_kept_numbers_and_measures_nothing(client, monkeypatch):
    """Reveal once; the page's reload reads /api/live/kept: same numbers, no measurement, no 409."""
    first = client.post("/api/live/kv_causal?lesson=day07&page=p1")
    assert first.status_code == 200, first.text
    assert first.json()["reveal"] == {"kind": "measured", "scored": True}

    from tokenloop.web import live

    def must_not_run(*args, **kwargs):
        raise AssertionError("a revisit measured again")

    monkeypatch.setattr(live, "causal", must_not_run)
    again = client.get("/api/live/kept?lesson=day07")
    assert again.status_code == 200 and again.json()["results"]["kv_causal"] == first.json()
    assert again.json()["running"] == {}
    # another browser (no cookie) has nothing kept: results are per session
    assert TestClient(client.app).get("/api/live/kept?lesson=day07").json()["results"] == {}


def test_the_demos_keep_their_result_per_session_with_the_engine_that_ran_it(client):
    assert client.get("/api/staircase").json() == {"result": None}
    result = client.post("/api/staircase", json={"max_len": 16, "points": 2, "repeats": 2}).json()["result"]
    assert client.get("/api/staircase").json()["result"] == result
    assert result["source"]["where"] == "in this process"
    assert set(result["effect"]) == {"uncached", "cached"}
    assert result["effect"]["uncached"]["verdict"] in ("higher", "lower", "unclear")
    assert TestClient(client.app).get("/api/staircase").json() == {"result": None}


def test_without_a_server_capacity_is_a_what_if_never_scored(client):
    r = client.post("/api/live/kv_capacity?lesson=day07").json()
    assert r["reveal"]["kind"] == "what_if" and r["reveal"]["scored"] is False


def test_the_answer_time_is_projected_from_the_steps_it_timed(client):
    r = client.post("/api/live/answer_time").json()
    assert r["reveal"] == {"kind": "projected", "from_steps": SMALL["answer_steps"], "scored": True}
    assert r["low_s"] <= r["total_s"] <= r["high_s"]
    assert "answer_time" in client.get("/api/live/kept?lesson=day01").json()["results"]


def test_the_projections_range_stays_inside_the_steps_timed():
    """Two fast steps and one slow one: the quartiles never extrapolate below the fastest step."""
    from tokenloop.latency import answer_time

    r = answer_time.result(10.0, [1.0, 1.1, 30.0], 8, "test")
    assert 1.0 <= r["itl_low_ms"] <= r["itl_ms"] <= r["itl_high_ms"] <= 30.0
    assert r["projected_from"] == 3 and r["low_s"] <= r["total_s"] <= r["high_s"]
