"""A broken or hostile server: no traceback, no silent success, no waiting for ever.

These faults (a stream that never ends, one that breaks off without [DONE], well-formed JSON of
the wrong shape, an answer trickled a byte at a time) can't be had from a real server on demand,
so `FakeVLLM` (tests/support/fake_vllm.py) produces them over real HTTP on 127.0.0.1. A real server that
dies mid-run is tested in test_llama_server.py.

Modules (src/tokenloop/): backends/server/client.py, backends/server/picks.py.
"""

import json
import time

import pytest
from support.cli_runner import cli, one_line_error
from support.fake_vllm import FakeVLLM, fake_vllm


def test_a_stream_stops_at_max_new_and_is_closed(capsys):
    with fake_vllm(fake := FakeVLLM(stream="endless")) as url:
        code, out, err = cli(capsys, "run", "hi", "--url", url, "--stream", "--max-new", "8", "--json")
        deadline = time.monotonic() + 5
        while not fake.hung_up and time.monotonic() < deadline:  # the server notices at its next write
            time.sleep(0.05)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line.get("step") for line in lines[:-1]] == list(range(1, 9))
    assert lines[-1]["stop"] == "max_new"
    assert fake.hung_up and fake.sent_chunks < 5000  # the client hung up; the server did not stream on for ever


def test_a_stream_that_breaks_off_is_an_error_at_its_step(capsys):
    with fake_vllm(FakeVLLM(stream="cut")) as url:
        code, out, err = cli(capsys, "run", "hi", "--url", url, "--stream", "--max-new", "8", "--json")
    assert code == 1
    assert [json.loads(line)["step"] for line in out.splitlines()] == [1, 2, 3]  # what came is kept
    assert err.count("\n") == 1 and "without its closing [DONE]" in err and "(at step 4)" in err


@pytest.mark.parametrize(
    "raw, words",
    [
        (b'{"choices": [null]}', "returned no logprobs"),
        (b"[1, 2, 3]", "where a completion object belongs"),
        (b'{"choices": [{"logprobs": {"tokens": "x", "top_logprobs": 7}}]}', "returned no logprobs"),
        (b"not json at all", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # deeper than Python's parser goes
    ],
)
def test_json_of_the_wrong_shape_is_one_line(capsys, raw, words):
    with fake_vllm(FakeVLLM(raw=raw)) as url:
        err = one_line_error(capsys, ["next", "hi", "--url", url], 1)
    assert words in err and "(at step 1)" in err


def test_the_timeout_is_a_deadline_for_the_whole_answer(capsys):
    with fake_vllm(FakeVLLM(trickle_s=0.5)) as url:  # a byte every half second: each read is quick
        start = time.monotonic()
        err = one_line_error(capsys, ["next", "hi", "--url", url, "--server-timeout", "2"], 1)
        waited = time.monotonic() - start
    assert "no answer within 2 s" in err and waited < 8


@pytest.mark.parametrize(
    "argv, words",
    [
        (["next", "hi", "--url", "http://127.0.0.1:abc"], "not a valid URL"),
        (["next", "hi", "--url", "http://127.0.0.1:9/v1", "--server-timeout", "0"], "--server-timeout"),
    ],
)
def test_bad_server_options_are_one_line_and_exit_2(capsys, argv, words):
    assert words in one_line_error(capsys, argv, 2)


@pytest.mark.parametrize(
    "raw", [b'{"choices": [null]}', b"[1, 2, 3]", b'{"choices": [{"logprobs": {"top_logprobs": [7]}}]}']
)
def test_the_web_app_answers_a_wrong_shaped_server_with_502(raw):
    from fastapi.testclient import TestClient

    from tokenloop.backends.server import ServerBackend
    from tokenloop.web import create_app

    with fake_vllm(FakeVLLM(raw=raw)) as url:
        backend = ServerBackend(url, log=lambda message: None)
        client = TestClient(create_app(backend, server_url=backend.root))
        response = client.post("/api/next", json={"prompt": "hi"})
        client.post("/api/lab/start", json={"prompt": "hi"})
        step = client.post("/api/lab/step", json={})
    assert response.status_code == 502 and "(at step 1)" in response.json()["error"]
    assert step.status_code == 502 and "Traceback" not in step.text
