"""The lesson app's own /v1/completions: the loop's records in vLLM's wire shape. The tiny model
checks the shape, the stream and the refusals in milliseconds; the real model, served by uvicorn
on 127.0.0.1, checks that the curl the page shows gives the same numbers as `tokenloop next`, and
that tokenloop's server backend runs against the app as against a vLLM.

Modules (src/tokenloop/): web/completions.py, web/routes/openai.py."""

from __future__ import annotations

import json
import math
import shlex

import httpx
import pytest
from fastapi.testclient import TestClient
from support.cli_runner import cli
from support.curl import run_curl
from support.launcher import app_serving

from tokenloop.loop import generate, next_token, prompt_ids
from tokenloop.records import Step
from tokenloop.web import create_app

PROMPT = "The scheduler places pods"


@pytest.fixture
def client(tiny):
    return TestClient(create_app(tiny))


def sse_data(text: str) -> list:
    """The `data:` payloads of a stream, [DONE] as the string."""
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert all(b.startswith("data: ") for b in blocks), blocks
    return [b[6:] if b[6:] == "[DONE]" else json.loads(b[6:]) for b in blocks]


def test_models_lists_the_one_model_with_its_context_and_says_what_it_is(client, tiny):
    card = client.get("/v1/models").json()["data"][0]
    assert card["id"] == tiny.model and card["max_model_len"] == tiny.context_length
    assert card["owned_by"] == "tokenloop" and "not a serving engine" in card["note"]


def test_a_completion_is_the_loop_in_vllms_shape(client, tiny):
    body = {"prompt": PROMPT, "max_tokens": 4, "logprobs": 3, "temperature": 0}
    answer = client.post("/v1/completions", json=body).json()
    records = [r for r in generate(tiny, prompt_ids(tiny, PROMPT), 4, show=3) if isinstance(r, Step)]
    choice = answer["choices"][0]
    assert answer["object"] == "text_completion" and answer["model"] == tiny.model
    assert choice["text"] == tiny.decode([r.chosen.id for r in records]) and choice["finish_reason"] == "length"
    lp = choice["logprobs"]
    assert lp["tokens"] == [tiny.token_text(r.chosen.id) for r in records]
    assert lp["text_offset"] == [sum(len(t) for t in lp["tokens"][:i]) for i in range(len(records))]
    for record, top, chosen in zip(records, lp["top_logprobs"], lp["token_logprobs"]):
        assert list(top)[0] == tiny.token_text(record.chosen.id)  # the pick first, as vLLM writes it
        assert chosen == pytest.approx(record.chosen.logprob, abs=1e-5)
        # the top 3, and the pick when it is not among them (tokens with the same text share a key)
        assert set(top) == {tiny.token_text(c.id) for c in [record.chosen, *record.top]}
    usage = answer["usage"]
    assert usage["prompt_tokens"] == len(prompt_ids(tiny, PROMPT)) and usage["completion_tokens"] == 4


def test_token_ids_as_prompt_and_as_keys(client, tiny):
    ids = prompt_ids(tiny, PROMPT)
    body = {"prompt": ids, "max_tokens": 1, "logprobs": 5, "temperature": 0}
    answer = client.post("/v1/completions", json={**body, "return_tokens_as_token_ids": True, "return_token_ids": True})
    choice = answer.json()["choices"][0]
    expected = next_token(tiny, ids, 5)
    keys = [k for k in choice["logprobs"]["top_logprobs"][0]]
    assert keys == [f"token_id:{c.id}" for c in expected.top]  # greedy: the pick is the favourite
    assert choice["token_ids"] == [expected.top[0].id] and choice["prompt_token_ids"] == ids
    for c, value in zip(expected.top, choice["logprobs"]["top_logprobs"][0].values()):
        assert value == pytest.approx(c.logprob, abs=1e-4)


def test_the_stream_sends_a_chunk_per_token_then_usage_then_done(client):
    body = {"prompt": PROMPT, "max_tokens": 5, "logprobs": 2, "temperature": 0}
    whole = client.post("/v1/completions", json=body).json()["choices"][0]
    response = client.post("/v1/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}})
    assert response.headers["content-type"].startswith("text/event-stream")
    data = sse_data(response.text)
    assert data[-1] == "[DONE]" and data[-2]["choices"] == [] and data[-2]["usage"]["completion_tokens"] == 5
    chunks = [d["choices"][0] for d in data[:-2]]
    assert len(chunks) == 5 and [c["finish_reason"] for c in chunks] == [None] * 4 + ["length"]
    assert "".join(c["text"] for c in chunks) == whole["text"]
    assert [c["logprobs"]["tokens"][0] for c in chunks] == whole["logprobs"]["tokens"]
    assert [c["logprobs"]["text_offset"][0] for c in chunks] == whole["logprobs"]["text_offset"]


def test_a_seed_repeats_a_sampled_completion(client):
    body = {"prompt": PROMPT, "max_tokens": 6, "temperature": 1.5, "top_p": 0.95, "seed": 7}
    texts = {client.post("/v1/completions", json=body).json()["choices"][0]["text"] for _ in range(2)}
    assert len(texts) == 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"prompt": PROMPT, "logprobs": 21}, "max allowed: 20"),
        ({"prompt": PROMPT, "max_tokens": 0}, "max_tokens must be between 1"),
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": "   "}, "prompt is empty"),
        ({"prompt": []}, "prompt is empty"),
        ({"prompt": PROMPT, "echo": True}, "echo=true is not supported"),
        ({"prompt": PROMPT, "n": 2}, "n=2 is not supported"),
        ({"prompt": PROMPT, "temperature": -1}, "temperature must be between 0"),
        ({"prompt": PROMPT, "top_p": 0}, "top_p must be above 0"),
        ({"prompt": PROMPT, "max_tokens": 60}, "maximum context length is 64 tokens"),
        ({"prompt": [10**6]}, "outside"),
        ({"prompt": ["a", "b"]}, "one prompt per request"),
        ({"prompt": PROMPT, "temprature": 0}, "temprature is not a field"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_values_get_400_with_one_line_in_openais_error_shape(client, body, words):
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert words in error["message"] and "\n" not in error["message"], error
    assert error["type"] == "BadRequestError" and error["code"] == 400


def test_a_body_that_is_not_json_and_an_unknown_model_are_refused_plainly(client):
    response = client.post("/v1/completions", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not JSON" in response.json()["error"]["message"]
    response = client.post("/v1/completions", json={"prompt": PROMPT, "model": "gpt-4"})
    assert response.status_code == 404 and "GET /v1/models" in response.json()["error"]["message"]


def test_another_site_cant_call_it(client):
    headers = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    response = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 1}, headers=headers)
    assert response.status_code == 403


def test_tokenize_and_detokenize_round_trip(client, tiny):
    answer = client.post("/tokenize", json={"prompt": PROMPT, "model": tiny.model}).json()
    assert answer["tokens"] == prompt_ids(tiny, PROMPT) and answer["count"] == len(answer["tokens"])
    assert client.post("/detokenize", json={"tokens": answer["tokens"]}).json()["prompt"] == PROMPT


# --- the real model, served on a port -----------------------------------------------------------
@pytest.fixture(scope="module")
def app_url(smol):
    with app_serving(create_app(smol)) as url:
        yield url


def test_the_curl_the_page_shows_matches_tokenloop_next(app_url, capsys):
    info = httpx.get(f"{app_url}/api/info").json()
    assert f"{app_url}/v1/completions" in info["curl"] and '"logprobs": 8' in info["curl"]
    answer = run_curl(info["curl"])
    prompt = json.loads(shlex.split(info["curl"])[-1])["prompt"]
    code, out, _ = cli(capsys, "next", prompt, "--json")
    assert code == 0
    expected = json.loads(out)["top"]
    top = answer["choices"][0]["logprobs"]["top_logprobs"][0]
    assert list(top) == [c["token"] for c in expected]  # the same tokens, in the same order
    for c, logprob in zip(expected, top.values()):
        assert math.exp(logprob) == pytest.approx(c["prob"], abs=1e-4)


def test_tokenloop_runs_against_the_app_as_against_a_server(app_url, capsys, smol):
    code, out, err = cli(capsys, "next", PROMPT, "--url", f"{app_url}/v1", "--json")
    assert code == 0, err
    served = json.loads(out)
    local = next_token(smol, prompt_ids(smol, PROMPT), 8)
    assert [c["id"] for c in served["top"]] == [c.id for c in local.top]
    for c, mine in zip(served["top"], local.top):
        assert c["prob"] == pytest.approx(mine.prob, abs=1e-4)
    code, out, err = cli(capsys, "run", PROMPT, "--url", f"{app_url}/v1", "--stream", "--max-new", "4", "--json")
    assert code == 0, err
    steps = [json.loads(line) for line in out.splitlines() if '"step"' in line]
    greedy = [r.chosen.id for r in generate(smol, prompt_ids(smol, PROMPT), 4) if isinstance(r, Step)]
    assert [s["chosen"]["id"] for s in steps] == greedy


def test_beside_a_server_the_apps_own_v1_answers_with_the_model_in_this_process(llama_url, smol):
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(llama_url)
    client = TestClient(create_app(server, compare=smol, server_url=server.root))
    assert client.get("/v1/models").json()["data"][0]["id"] == smol.model
    body = {"prompt": PROMPT, "max_tokens": 1, "logprobs": 3, "temperature": 0}
    answer = client.post("/v1/completions", json=body).json()
    expected = next_token(smol, prompt_ids(smol, PROMPT), 3).top
    assert answer["model"] == smol.model
    assert list(answer["choices"][0]["logprobs"]["top_logprobs"][0]) == [c.token for c in expected]


def test_an_end_token_stops_the_completion_unless_ignore_eos(smol):
    client = TestClient(create_app(smol))
    chat = smol.chat_text([{"role": "user", "content": "Say hello."}])
    body = {"prompt": chat, "max_tokens": 48, "temperature": 0, "logprobs": 1}
    stopped = client.post("/v1/completions", json=body).json()
    choice = stopped["choices"][0]
    assert choice["finish_reason"] == "stop" and stopped["usage"]["completion_tokens"] < 48
    end = choice["logprobs"]["tokens"][-1]
    assert end not in choice["text"]  # the end token is not part of the text
    forced = client.post("/v1/completions", json={**body, "ignore_eos": True}).json()
    assert forced["choices"][0]["finish_reason"] == "length" and forced["usage"]["completion_tokens"] == 48
    assert (
        forced["choices"][0]["logprobs"]["tokens"][: len(choice["logprobs"]["tokens"])] == choice["logprobs"]["tokens"]
    )
