"""Lesson 6's live routes (web/draws.py, web/routes/lesson06.py) on the tiny real model: each
answer is the measurement of draws/embedded.py, with its reveal label and source, kept for the
session under its live key, and written into the lesson's Markdown (lessons/markdown_live.py)."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from support.vllm_direct import completion as direct

from tokenloop.draws import embedded as draws
from tokenloop.lessons import content
from tokenloop.lessons.markdown import render
from tokenloop.web import create_app

SMALL = {"sampling_draws": 10, "sampling_batch_steps": 2, "steps": 2, "max_len": 16, "points": 2, "repeats": 2}
Q = "?lesson=day06&page=p1"
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


@pytest.mark.parametrize("what", ["step 3", "step 5"])
def test_a_server_elsewhere_needs_its_owners_say_so_before_anything_is_sent(what):
    """docs/bad-inputs.md's row: steps 3 and 5 refuse a non-loopback server without "I run this
    server", before a request. A stand-in for the connected server: a test can't start a real one
    off this machine, and the refusal reads only its address."""
    from types import SimpleNamespace

    from tokenloop.errors import UsageError
    from tokenloop.web import draws as web_draws
    from tokenloop.web.schemas import ConsentIn

    elsewhere = SimpleNamespace(root="http://192.0.2.10:8000", caps=SimpleNamespace(kind="vLLM"))
    plan = web_draws.served.outside_plan(50) if what == "step 3" else web_draws.served.batch_plan(8)
    with pytest.raises(UsageError, match=rf"^192\.0\.2\.10 is not this machine: {what} loads a real server"):
        web_draws.plan_first(elsewhere, ConsentIn(consent=True), plan, what)
    assert web_draws.plan_first(elsewhere, ConsentIn(consent=True, remote=True), plan, what) is None


def completion(url: str, model: str, **fields) -> dict:
    """One /v1/completions call made here, not by tokenloop, on the lesson's prompt."""
    return direct(url, model, content.load("day06")["prompt"], **fields)


def test_with_a_raw_vllm_each_step_runs_on_the_server_or_says_why(vllm_url, smol):
    """Steps 1, 3 and 5 on the server (3 and 5 only after consent), 2 and 4 beside it, on the
    embedded model, with the server's one-line reason; each checked against a call made here."""
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(vllm_url, log=lambda message: None)
    demo = {**SMALL, "sampling_draws": 6, "sampling_batch_steps": 6}
    c = TestClient(create_app(server, compare=smol, server_url=server.root, demo=demo))
    same = c.post(f"/api/live/sampling_same_forward{Q}").json()
    assert same["source"]["engine"] == "vLLM" and same["mode"] == "raw" and same["max_abs_diff"] < 1e-3
    for run in same["runs"]:
        assert run["drawn"]["id"] == completion(vllm_url, server.model, temperature=run["temperature"], seed=1)["pick"]
    hot = c.post(f"/api/live/sampling_temperature{Q}").json()
    assert hot["on"] == "embedded, beside the server" and "raw logprobs" in hot["why"]
    assert hot["source"]["model"] == smol.model and hot["vocab_size"] == 49152
    plan = c.post(f"/api/live/sampling_outside_top{Q}").json()  # nothing sent yet: the plan, not kept
    assert plan["needs_consent"] and plan["loopback"] and "6 one-token requests" in plan["plan"]["text"]
    assert "sampling_outside_top" not in c.get("/api/live/kept?lesson=day06").json()["results"]
    out = c.post(f"/api/live/sampling_outside_top{Q}", json={"consent": True}).json()
    top = completion(vllm_url, server.model, temperature=1.0, logprobs=5)["top"]
    picks = [completion(vllm_url, server.model, temperature=1.0, seed=s, logprobs=1)["pick"] for s in range(6)]
    assert out["source"]["engine"] == "vLLM" and out["outside"] == sum(p not in top for p in picks)
    assert c.post(f"/api/live/sampling_batch{Q}").json()["needs_consent"]
    batch = c.post(f"/api/live/sampling_batch{Q}", json={"consent": True}).json()
    assert batch["source"]["engine"] == "vLLM" and batch["batch"] == 8 and batch["distinct"] >= 1
    alone = TestClient(create_app(server, server_url=server.root, demo=demo))  # no model in this process
    for key in ("sampling_temperature", "sampling_top_p"):
        r = alone.post(f"/api/live/{key}{Q}")
        assert r.status_code == 400 and r.json()["error"].startswith("the server reports raw logprobs"), r.text
    md = c.post("/api/lesson/markdown", json={"lesson": "day06", "guesses": {}}).json()["markdown"]
    assert f"{out['outside']} of 6 draws" in md and "Computed on the vLLM server" in md
    assert "Why not on the server: the server reports raw logprobs" in md
    print("\nraw vLLM:", same["runs"], hot["points"], out, batch, sep="\n")


def test_with_a_processed_vllm_steps_two_and_four_read_the_servers_numbers(vllm_processed_url, smol):
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(vllm_processed_url, log=lambda message: None)
    c = TestClient(create_app(server, compare=smol, server_url=server.root, demo=SMALL))
    hot = c.post(f"/api/live/sampling_temperature{Q}").json()
    assert hot["source"]["engine"] == "vLLM" and hot["mode"] == "processed"
    for p in hot["points"]:
        asked = completion(vllm_processed_url, server.model, temperature=p["temperature"], seed=0, logprobs=5)
        assert abs(p["prob"] - math.exp(asked["top"][hot["id"]])) < 1e-3
    kept = c.post(f"/api/live/sampling_top_p{Q}").json()
    asked = completion(vllm_processed_url, server.model, temperature=1.0, top_p=0.5, seed=0, logprobs=5)
    assert kept["eligible"] == sum(v > -9999 for v in asked["top"].values())
    same = c.post(f"/api/live/sampling_same_forward{Q}").json()
    assert same["mode"] == "processed" and same["max_abs_diff"] > 0.1
    print("\nprocessed vLLM:", hot["token"], hot["points"], kept, same["max_abs_diff"], sep="\n")


def test_the_lab_on_a_processed_vllm_draws_on_the_server_with_the_seed_box(vllm_processed_url):
    """The lab's API on a server reporting processed logprobs: a sampled step's pick and its bars
    after the sampler are the server's (its call with the seed + step), the raw bars a greedy call's;
    the same seed repeats the draws, another seed draws its own."""
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(vllm_processed_url, log=lambda message: None)
    c = TestClient(create_app(server, server_url=server.root))
    prompt = content.load("day06")["prompt"]

    def three(seed: int) -> list[dict]:
        c.post("/api/lab/start", json={"prompt": prompt})
        sampler = {"temperature": 1.5, "top_p": 0.9, "seed": seed}
        return [c.post("/api/lab/step", json={"sampler": sampler, "show": 5}).json() for _ in range(3)]

    first, again, other = three(7), three(7), three(11)
    assert [s["chosen"]["id"] for s in first] == [s["chosen"]["id"] for s in again]
    step = first[0]
    assert step["sampler"] == "T=1.5 top_p=0.9 by the server, its processed logprobs"
    after = completion(vllm_processed_url, server.model, temperature=1.5, top_p=0.9, seed=8, logprobs=5)
    before = completion(vllm_processed_url, server.model, temperature=0, logprobs=5)
    assert (
        step["chosen"]["id"] == after["pick"]
        and other[0]["chosen"]["id"]
        == completion(vllm_processed_url, server.model, temperature=1.5, top_p=0.9, seed=12, logprobs=1)["pick"]
    )
    for shown, asked in ((step["top"], before), (step["processed"], after)):
        assert len(shown) == 5
        for cand in shown:
            assert abs(cand["prob"] - math.exp(asked["top"][cand["id"]])) < 2e-3, (cand, asked["top"])
    assert (
        abs(step["top"][0]["prob"] - step["processed"][0]["prob"]) > 1e-3
        or step["top"][0]["id"] != step["processed"][0]["id"]
    )
