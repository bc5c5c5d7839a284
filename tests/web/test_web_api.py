"""The web API through `create_app`: the same records as the loop, per-browser lab state, bounded
input, and the lesson's live parts. The tiny random model keeps most of these in milliseconds;
the teacher needs the real instruct model and its chat template.

Modules (src/tokenloop/): web/app.py, web/middleware.py, web/errors.py, web/deps.py, web/info.py,
web/compare.py, web/lab.py, web/sessions.py, web/schemas.py, web/events.py, web/score.py, web/demos.py,
web/routes/pages.py, web/routes/lesson.py, web/routes/lab.py, web/routes/score.py, web/routes/demos.py,
web/routes/live.py."""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import threading

import pytest
from fastapi.testclient import TestClient

from tokenloop import cli
from tokenloop.loop import generate, next_token, prompt_ids
from tokenloop.records import Step
from tokenloop.web import create_app
from tokenloop.web.sessions import COOKIE, SessionStore

PROMPT = "The scheduler places pods"
SMALL = {"steps": 2, "max_len": 16, "points": 2, "repeats": 1, "teacher_max_new": 4}


def events(text: str) -> list[tuple[str, dict]]:
    """Parse a text/event-stream body into (event, data) pairs."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


@pytest.fixture
def app(tiny):
    return create_app(tiny, demo=SMALL)


@pytest.fixture
def client(app):
    return TestClient(app)


def greedy_ids(backend, prompt: str, n: int) -> list[int]:
    return [r.chosen.id for r in generate(backend, prompt_ids(backend, prompt), n) if isinstance(r, Step)]


# --- pages and assets ---------------------------------------------------------------------------
def test_pages_load_only_local_assets_under_a_strict_policy(client):
    for page in ("/", "/lab"):
        response = client.get(page)
        assert response.status_code == 200 and "text/html" in response.headers["content-type"]
        assert "script-src 'self'" in response.headers["content-security-policy"]
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', response.text):
            assert client.get(asset).status_code == 200, asset
    for name in (
        "dom.js",
        "api.js",
        "charts.js",
        "lesson.js",
        "lab.js",
        "kinds.js",
        "live_kv.js",
        "lessons.js",
        "teacher.js",
        "cluster.js",
        "style.css",
        "kinds.css",
        "index.html",
        "lab.html",
    ):
        text = client.get(f"/static/{name}").text
        assert not re.search(r"(src|href|url\()\s*=?\s*[\"']?https?://", text), (
            f"{name} loads something from the network"
        )
    for name in (
        "dom.js",
        "api.js",
        "charts.js",
        "lesson.js",
        "lab.js",
        "kinds.js",
        "live_kv.js",
        "lessons.js",
        "teacher.js",
        "cluster.js",
    ):
        assert "innerHTML" not in client.get(f"/static/{name}").text  # model text goes in as text only


def test_info_describes_the_connected_backend(client, tiny):
    info = client.get("/api/info").json()
    assert info["model"] == tiny.model and info["backend"] == "embedded"
    assert info["vocab_size"] == tiny.vocab_size and info["context_length"] == tiny.context_length
    assert info["can_score"] and not info["can_chat"]  # the tiny model has no chat template
    assert "/v1/completions" in info["curl"] and "Kubernetes pods" in info["curl"]  # the app's own /v1
    assert info["demo"]["steps"] == SMALL["steps"]


def test_the_lesson_is_served_as_data(client):
    lesson = client.get("/api/lesson").json()
    assert len(lesson["steps"]) == 6 and len(lesson["ask_your_ai"]["prompts"]) == 3
    for step in lesson["steps"]:
        if step["kind"] == "choice":
            assert 0 <= step["answer"] < len(step["choices"])
    pipeline = [s["name"] for s in lesson["course_map"]["pipeline"]]
    assert pipeline == ["text", "tokenize", "prefill"] and lesson["course_map"]["loop"]["name"] == "decode step"


# --- one step, the lab --------------------------------------------------------------------------
def test_next_is_the_loops_next_token(client, tiny):
    got = client.post("/api/next", json={"prompt": PROMPT, "top_k": 5}).json()
    want = next_token(tiny, prompt_ids(tiny, PROMPT), 5)
    assert [c["id"] for c in got["top"]] == [c.id for c in want.top]
    assert [c["prob"] for c in got["top"]] == pytest.approx([c.prob for c in want.top], abs=1e-6)
    assert got["other"] == pytest.approx(want.other, abs=1e-6)


def test_lab_steps_and_runs_pick_what_the_loop_picks(client, tiny):
    want = greedy_ids(tiny, PROMPT, 6)
    state = client.post("/api/lab/start", json={"prompt": PROMPT}).json()
    assert [t["id"] for t in state["prompt_tokens"]] == prompt_ids(tiny, PROMPT)
    first = client.post("/api/lab/step", json={}).json()
    assert first["step"] == 1 and first["chosen"]["id"] == want[0] and first["tokens_in"] == len(state["prompt_tokens"])
    stream = client.post("/api/lab/run", json={"max_new": 5})
    assert stream.headers["content-type"].startswith("text/event-stream")
    got = events(stream.text)
    steps = [data for name, data in got if name == "step"]
    assert got[-1][0] == "done"
    assert [first["chosen"]["id"]] + [s["chosen"]["id"] for s in steps] == want[: 1 + len(steps)]
    assert all(s["tokens_in"] == 1 for s in steps)  # the session's KV cache: one new token per step
    lab = client.get("/api/lab").json()
    assert len(lab["steps"]) == 1 + len(steps) and lab["text"] == tiny.decode(want[: 1 + len(steps)])


def test_branch_replaces_a_pick_and_the_loop_continues_from_it(client, tiny):
    client.post("/api/lab/start", json={"prompt": PROMPT})
    for _ in range(3):
        client.post("/api/lab/step", json={"show": 4})
    second = client.get("/api/lab").json()["steps"][0]["top"][1]  # step 1's runner-up
    state = client.post("/api/lab/branch", json={"step": 1, "token_id": second["id"]}).json()
    assert (
        len(state["steps"]) == 1
        and state["steps"][0]["chosen"]["id"] == second["id"]
        and state["steps"][0]["extra"]["branched"]
    )
    after = client.post("/api/lab/step", json={}).json()
    expected = next_token(tiny, prompt_ids(tiny, PROMPT) + [second["id"]], 1).top[0]
    assert after["step"] == 2 and after["chosen"]["id"] == expected.id
    assert after["chosen"]["prob"] == pytest.approx(
        expected.prob, abs=1e-5
    )  # the cropped cache gives the uncached answer
    refused = client.post("/api/lab/branch", json={"step": 1, "token_id": 10**6})
    assert refused.status_code == 400 and "candidates" in refused.json()["error"]


def test_stop_ends_a_run_between_steps(client, app, tiny):
    from tokenloop.web import lab
    from tokenloop.web.schemas import SamplerIn

    client.post("/api/lab/start", json={"prompt": PROMPT})
    session = app.state.sessions.get(client.cookies[COOKIE])
    run = lab.run(tiny, session, SamplerIn(), show=3, max_new=50)
    assert next(run)[0] == "step"
    assert client.post("/api/lab/stop").json() == {"stopping": True}  # pressed while the run is going
    rest = list(run)
    assert rest == [("done", rest[0][1])] and rest[0][1]["stop"] == "stopped" and len(rest[0][1]["ids"]) == 1
    assert len(client.get("/api/lab").json()["steps"]) == 1  # Step continues from where it stopped


def test_sampled_lab_shows_both_distributions_and_a_seed_repeats(client):
    sampler = {"temperature": 1.5, "top_k": 5, "seed": 7}
    runs = []
    for _ in range(2):
        client.post("/api/lab/start", json={"prompt": PROMPT})
        runs.append([client.post("/api/lab/step", json={"sampler": sampler}).json() for _ in range(4)])
    assert [s["chosen"]["id"] for s in runs[0]] == [s["chosen"]["id"] for s in runs[1]]
    step = runs[0][0]
    assert step["sampler"] == "T=1.5 top_k=5" and step["processed"] is not None
    processed = [c["prob"] for c in step["processed"]]
    assert sum(processed[:5]) == pytest.approx(1.0, abs=1e-4) and not any(processed[5:])  # top-k, renormalised


def test_export_is_json_lines_of_the_run(client):
    client.post("/api/lab/start", json={"prompt": PROMPT})
    client.post("/api/lab/step", json={})
    client.post("/api/lab/step", json={})
    lines = [json.loads(line) for line in client.get("/api/lab/export").text.splitlines()]
    assert lines[0]["prompt"] == PROMPT and [r["step"] for r in lines[1:]] == [1, 2]


def test_reload_restores_a_run_the_server_forgot(client, tiny):
    want = greedy_ids(tiny, PROMPT, 3)
    state = client.post("/api/lab/start", json={"prompt": PROMPT, "resume": want[:2]}).json()
    assert [s["chosen"]["id"] for s in state["steps"]] == want[:2] and state["steps"][0]["extra"]["restored"]
    assert client.post("/api/lab/step", json={}).json()["chosen"]["id"] == want[2]


# --- several learners at once -----------------------------------------------------------------
def test_each_browser_has_its_own_run_and_concurrent_steps_are_safe(app, tiny):
    prompts = [
        "The scheduler places pods",
        "A token is not a word",
        "The model predicts the next token",
        "Kubernetes pods",
    ]
    want = {p: greedy_ids(tiny, p, 5) for p in prompts}
    clients = {p: TestClient(app) for p in prompts}
    got, errors = {}, []

    def learner(prompt):
        try:
            c = clients[prompt]
            c.post("/api/lab/start", json={"prompt": prompt})
            got[prompt] = [c.post("/api/lab/step", json={}).json()["chosen"]["id"] for _ in range(5)]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=learner, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and got == want
    assert len({c.cookies[COOKIE] for c in clients.values()}) == len(prompts)


def test_the_session_store_forgets_the_least_recently_used():
    store = SessionStore(limit=2)
    a, b = store.get(None), store.get(None)
    assert store.get(a.id) is a  # a is now the most recent
    c = store.get(None)
    assert a.id in store and c.id in store and b.id not in store and len(store) == 2
    assert store.get("made-up").id != "made-up"  # the client never picks its id


# --- score mode ---------------------------------------------------------------------------------
def test_score_is_every_step_of_the_loop_in_one_pass(client, tiny):
    result = client.post("/api/score", json={"text": PROMPT}).json()
    ids = [t["id"] for t in result["tokens"]]
    assert ids == tiny.encode(PROMPT) and result["tokens"][0]["prob"] is None
    for i in range(1, len(ids)):
        step = next_token(tiny, ids[:i], 300)  # the whole tiny vocabulary
        probs = {c.id: c.prob for c in step.top}
        assert result["tokens"][i]["prob"] == pytest.approx(probs[ids[i]], abs=1e-5)
        assert result["tokens"][i]["rank"] == 1 + sum(p > probs[ids[i]] for p in probs.values())
        assert result["tokens"][i]["top"]["id"] == step.top[0].id


# --- bad input: a clear 4xx, never a traceback --------------------------------------------------
@pytest.mark.parametrize(
    "path, body, status, words",
    [
        ("/api/next", {"prompt": "x" * 5000}, 422, "at most 4000"),
        ("/api/next", {"prompt": "   "}, 400, "prompt is empty"),
        ("/api/next", {"prompt": "hi", "top_k": 0}, 422, "top_k"),
        ("/api/next", {"prompt": "hi", "colour": "red"}, 422, "colour"),
        ("/api/lab/step", {}, 400, "no prompt yet"),
        ("/api/lab/run", {"max_new": 3}, 400, "no prompt yet"),
        ("/api/lab/branch", {"step": 3, "token_id": 1}, 400, "no step 3"),
        ("/api/lab/start", {"prompt": "pods " * 200}, 400, "shorten it"),
        ("/api/score", {"text": "a"}, 400, "at least two tokens"),
        ("/api/teacher", {"question": "why does the cache help?"}, 400, "no chat template"),
        ("/api/compare", {"prompt": "hi"}, 400, "--url"),
        ("/api/lab/step", {"sampler": {"temperature": -1}}, 422, "temperature"),
    ],
)
def test_bad_input_gets_a_4xx_with_a_message(client, path, body, status, words):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_oversized_bodies_and_foreign_hosts_are_refused(tiny):
    client = TestClient(create_app(tiny, allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://127.0.0.1")
    too_big = client.post(
        "/api/next", content=b"{" + b" " * 300_000 + b"}", headers={"content-type": "application/json"}
    )
    assert too_big.status_code == 413 and "KiB" in too_big.json()["error"]
    assert client.get("/api/info").status_code == 200
    assert client.get("/api/info", headers={"host": "attacker.example"}).status_code == 400  # DNS rebinding


def test_a_chunked_upload_is_refused_at_the_limit_too(client):
    def chunks():  # no Content-Length: the body arrives in pieces, 1 MB in all
        for _ in range(16):
            yield b" " * 65536

    response = client.post("/api/next", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "KiB" in response.json()["error"]


@pytest.mark.parametrize(
    "body, words",
    [
        (b'{"sampler": {"temperature": Infinity}}', "temperature"),
        (b'{"sampler": {"temperature": NaN}}', "temperature"),
        (b'{"sampler": {"top_p": -Infinity}}', "top_p"),
        (b'{"sampler": {"seed": 99999999999999999999999999}}', "seed"),
        (b'{"show": 1e400}', "show"),
    ],
)
def test_non_finite_and_huge_numbers_are_a_422_not_a_500(client, body, words):
    response = client.post("/api/lab/step", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert words in response.json()["error"] and "Infinity" not in response.text and "NaN" not in response.text


def test_an_unpaired_surrogate_is_a_422(client):
    response = client.post(
        "/api/next", content=b'{"prompt": "caf\\ud800"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and "unpaired surrogate" in response.json()["error"]


def test_an_error_reply_never_echoes_the_request(client):
    secret = "do-not-echo-" + "x" * 4100
    response = client.post("/api/next", json={"prompt": secret})
    assert response.status_code == 422 and "do-not-echo" not in response.text


def test_a_cross_site_page_cannot_change_the_lab_or_evict_sessions(client, app):
    client.post("/api/lab/start", json={"prompt": PROMPT})
    mine = client.cookies.get(COOKIE)
    stranger = TestClient(app)  # no cookie, as a form on another site would post
    for _ in range(40):
        assert stranger.post("/api/lab/stop").json() == {"stopping": False}
    assert mine in app.state.sessions  # 40 cookie-less stops made no session and evicted none
    refused = [
        stranger.post("/api/lab/start", json={"prompt": "x"}, headers={"origin": "https://evil.example"}),
        stranger.post("/api/lab/stop", headers={"sec-fetch-site": "cross-site"}),
        client.post("/api/lab/step", json={}, headers={"origin": "http://localhost:9999"}),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    same = client.post(
        "/api/lab/step", json={}, headers={"origin": "http://testserver", "sec-fetch-site": "same-origin"}
    )
    assert same.status_code == 200


def test_listening_beyond_this_machine_still_checks_the_host_name():
    from tokenloop.commands.lesson import allowed_hosts

    assert allowed_hosts("127.0.0.1", []) == ["127.0.0.1", "localhost", "[::1]"]
    wide = allowed_hosts("0.0.0.0", ["lab.internal"])
    assert wide == ["127.0.0.1", "localhost", "[::1]", "lab.internal"] and "0.0.0.0" not in wide
    assert allowed_hosts("::1", []) == ["127.0.0.1", "localhost", "[::1]"]


def test_the_api_is_described_by_its_openapi_document(client):
    assert client.get("/api/openapi.json").json()["info"]["title"] == "tokenloop lesson"
    assert client.get("/api/docs").status_code == 404  # a page that would load a CDN's scripts is not served


# --- the side by side view, the teacher, the demos ----------------------------------------------
def test_compare_runs_both_backends_on_the_same_prompt(tiny):
    client = TestClient(create_app(tiny, compare=tiny))
    got = client.post("/api/compare", json={"prompt": PROMPT, "top_k": 3, "max_new": 2}).json()
    assert got["a"]["top"] == got["b"]["top"] and got["a"]["text"] == tiny.decode(greedy_ids(tiny, PROMPT, 2))


@pytest.mark.model
def test_the_teacher_streams_an_answer_from_the_instruct_model(smol):
    client = TestClient(create_app(smol, demo=SMALL))
    assert client.get("/api/info").json()["teacher_model"] == smol.model
    got = events(client.post("/api/teacher", json={"question": "What is a token?", "max_new": 4}).text)
    assert got[0] == ("model", {"model": smol.model, "backend": "embedded"}) and got[-1][0] == "done"
    text = "".join(data["text"] for name, data in got if name == "text")
    assert text.strip() and "<|im_end|>" not in text


def test_the_teachers_system_message_carries_the_lesson(app):
    from tokenloop.web import teacher

    messages = teacher.messages(
        app.state.lesson, "why?", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    )
    assert messages[0]["role"] == "system" and "one token at a time" in messages[0]["content"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"] and messages[-1][
        "content"
    ] == "why?"


def test_the_staircase_runs_on_demand_and_is_kept(client):
    assert client.get("/api/staircase").json() == {"result": None}
    result = client.post("/api/staircase", json={"max_len": 16, "points": 2, "repeats": 1}).json()["result"]
    from tokenloop.cost.staircase import lengths

    assert [p["length"] for p in result["series"]] == lengths(16, 2)
    assert all(p["uncached_tokens_in"] == p["length"] and p["cached_tokens_in"] == 1 for p in result["series"])
    assert client.get("/api/staircase").json()["result"] == result
    too_long = client.post("/api/staircase", json={"max_len": 2048, "points": 2, "repeats": 1})
    assert too_long.status_code == 400 and "context" in too_long.json()["error"]


def test_the_training_demo_runs_or_says_why_not(client):
    response = client.post("/api/training", json={"steps": 2})
    if importlib.util.find_spec("tokenloop.training.teach") is None:
        assert response.status_code == 503 and "training" in response.json()["error"]
        return
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert len(result["losses"]) == 2 and result["cost"]["ratio"] > 0
    assert client.get("/api/training").json()["result"] == result


# --- the command ----------------------------------------------------------------------------------
def test_the_command_refuses_a_busy_port_in_one_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        code = cli.main(["lesson", "--port", str(s.getsockname()[1])])
    err = capsys.readouterr().err
    assert code == 2 and "pick another with --port" in err and len(err.strip().splitlines()) == 1


def test_the_command_refuses_a_bad_port(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["lesson", "--port", "70000"])
    assert exit_.value.code == 2 and "between 1 and 65535" in capsys.readouterr().err


# --- with the learner's own server --------------------------------------------------------------
@pytest.mark.model
def test_with_a_server_the_app_talks_to_it_and_keeps_the_embedded_model_beside_it(llama_url, smol):
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(llama_url)
    client = TestClient(create_app(server, compare=smol, server_url=server.root, demo=SMALL))
    info = client.get("/api/info").json()
    assert info["backend"] == "server" and info["compare"] == smol.model and info["teacher_model"] == server.model
    assert info["curl"].startswith(f"curl -s {server.root}/v1/completions") and '"logprobs": 8' in info["curl"]

    side = client.post(
        "/api/compare", json={"prompt": "Kubernetes pods are scheduled by the", "top_k": 3, "max_new": 0}
    ).json()
    assert (side["a"]["backend"], side["b"]["backend"]) == ("server", "embedded")
    assert side["a"]["top"][0]["id"] == side["b"]["top"][0]["id"]  # the same weights agree on the favourite

    client.post("/api/lab/start", json={"prompt": PROMPT})
    steps = [client.post("/api/lab/step", json={"show": 3}).json() for _ in range(2)]
    assert [s["step"] for s in steps] == [1, 2] and all(s["top"] for s in steps)
    assert client.post("/api/score", json={"text": PROMPT}).json()["model"] == smol.model  # scored in this process

    got = events(client.post("/api/teacher", json={"question": "What is a token?", "max_new": 6}).text)
    assert got[0][1]["backend"] == "server" and got[-1][0] == "done"  # answered by the server's chat endpoint
    assert "".join(data["text"] for name, data in got if name == "text").strip()
