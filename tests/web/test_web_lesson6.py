"""Lesson 6's live routes (web/draws.py, web/routes/lesson06.py) on the tiny real model: each
answer is the measurement of draws/embedded.py, with its reveal label and source, kept for the
session under its live key, and written into the lesson's Markdown (lessons/markdown_live.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tokenloop.draws import embedded as draws
from tokenloop.lessons import content
from tokenloop.lessons.markdown import render
from tokenloop.web import create_app

SMALL = {"sampling_draws": 10, "sampling_batch_steps": 2, "steps": 2, "max_len": 16, "points": 2, "repeats": 2}
ROUTES = {
    "sampling_same_forward": "sampling_same_forward",
    "sampling_temperature": "sampling_temperature",
    "sampling_outside_top": "sampling_outside_top",
    "sampling_top_p": "sampling_top_p",
    "sampling_batch": "sampling_batch",
}


@pytest.fixture(scope="module")
def client(tiny):
    with TestClient(create_app(tiny, demo=SMALL)) as c:
        yield c


def test_the_lesson_loads_and_names_a_live_route_for_every_step():
    lesson = content.load("day06")
    assert [s["live"] for s in lesson["steps"]] == list(ROUTES)
    assert lesson["course_map"]["here"] == {"number": 6, "id": "day06"}


@pytest.mark.parametrize("key", list(ROUTES))
def test_each_route_measures_keeps_and_names_its_source(client, tiny, key):
    r = client.post(f"/api/live/{key}?lesson=day06&page=p1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reveal"]["kind"] == "measured" and body["reveal"]["scored"]
    assert body["source"]["model"] == tiny.model and "embedded" in body["source"]["engine"]
    assert client.get("/api/live/kept?lesson=day06").json()["results"][key]["prompt"] == body["prompt"]


def test_the_routes_answers_are_the_direct_measurements(client, tiny):
    prompt = content.load("day06")["prompt"]
    same = client.post("/api/live/sampling_same_forward?lesson=day06").json()
    assert same["max_abs_diff"] == 0 and same["runs"] == draws.same_forward(tiny, prompt)["runs"]
    hot = client.post("/api/live/sampling_temperature?lesson=day06").json()
    assert hot["points"] == draws.temperature_prob(tiny, prompt)["points"]
    out = client.post("/api/live/sampling_outside_top?lesson=day06").json()
    assert out["draws"] == 10 and out["outside"] == draws.outside_top(tiny, prompt, draws=10)["outside"]


def test_the_markdown_copy_writes_every_kept_result(client):
    lesson = content.load("day06")
    results = {key: client.post(f"/api/live/{key}?lesson=day06").json() for key in ROUTES}
    text = render(lesson, {"model": "tiny", "results": results})
    assert "Not measured in this copy" not in text
    assert f"largest difference over all {results['sampling_same_forward']['vocab_size']:,} logits was 0" in text
    assert f"top_p 0.5 kept {results['sampling_top_p']['eligible']} of" in text
    assert f"{results['sampling_outside_top']['outside']} of 10 draws" in text
