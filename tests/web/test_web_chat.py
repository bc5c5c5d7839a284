"""The app's /v1/chat/completions (web/chat.py), /tokenize with `messages` and the stop texts of
/v1/completions: the loop through the model's chat template, in vLLM's shape. The official
`openai` client calls both endpoints, whole and streamed, on the app and on a real vLLM serving
the same weights, and the answers are compared: the same prompt count, the same greedy text, the
same top tokens with logprobs within float32's rounding.

Modules (src/tokenloop/): web/chat.py."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from support.launcher import app_serving

from tokenloop.loop import generate
from tokenloop.records import Step
from tokenloop.sampling import Sampler
from tokenloop.web import create_app

PROMPT = "Kubernetes pods are scheduled by the"
MESSAGES = [{"role": "user", "content": PROMPT}]


@pytest.fixture(scope="module")
def chat_client(smol):
    return TestClient(create_app(smol))


def greedy(backend, ids, n):
    return [r.chosen.id for r in generate(backend, ids, n, Sampler()) if isinstance(r, Step)]


def test_a_chat_answer_is_the_loop_on_the_templates_ids(chat_client, smol):
    body = {"messages": MESSAGES, "max_tokens": 6, "temperature": 0, "logprobs": True, "top_logprobs": 3}
    answer = chat_client.post("/v1/chat/completions", json=body).json()
    ids = smol.encode(smol.chat_text(MESSAGES))
    made = greedy(smol, ids, 6)
    choice = answer["choices"][0]
    assert answer["object"] == "chat.completion" and answer["id"].startswith("chatcmpl-")
    assert choice["message"] == {"role": "assistant", "content": smol.decode(made)}
    assert answer["usage"] == {"prompt_tokens": len(ids), "completion_tokens": 6, "total_tokens": len(ids) + 6}
    content = choice["logprobs"]["content"]
    assert [c["token"] for c in content] == [smol.token_text(i) for i in made]
    assert all(len(c["top_logprobs"]) == 3 and c["top_logprobs"][0]["token"] == c["token"] for c in content)
    assert choice["finish_reason"] == "length"


def test_the_streamed_chat_is_the_same_text_in_chunks(chat_client):
    body = {"messages": MESSAGES, "max_tokens": 6, "temperature": 0}
    whole = chat_client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    with chat_client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        lines = [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    import json

    chunks = [json.loads(line) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == whole
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_tokenize_takes_messages_with_or_without_the_generation_prompt(chat_client, smol):
    on = chat_client.post("/tokenize", json={"messages": MESSAGES, "return_token_strs": True}).json()
    off = chat_client.post("/tokenize", json={"messages": MESSAGES, "add_generation_prompt": False}).json()
    assert on["tokens"] == smol.encode(smol.chat_text(MESSAGES)) and on["count"] > off["count"]
    assert on["tokens"][: off["count"]] == off["tokens"]
    assert on["token_strs"] == [smol.token_text(i) for i in on["tokens"]]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"messages": []}, "messages is empty"),
        ({"messages": [{"role": "user"}]}, "each message must be"),
        ({"messages": MESSAGES, "top_logprobs": 21, "logprobs": True}, "top_logprobs must be between 0 and 20"),
        ({"messages": MESSAGES, "top_logprobs": 2}, "top_logprobs needs logprobs: true"),
        ({"messages": MESSAGES, "max_tokens": 9000}, "max_tokens must be between 1"),
        ({"messages": MESSAGES, "stop": [""]}, "stop must be a non-empty text"),
        ({"messages": MESSAGES, "n": 2}, "n=2 is not supported"),
        ({"prompt": PROMPT}, "messages: Field required"),
    ],
)
def test_bad_chat_requests_get_one_line_in_openais_shape(chat_client, body, words):
    r = chat_client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]["message"]


def test_tokenize_wants_a_prompt_or_messages_not_both(tiny):
    client = TestClient(create_app(tiny))
    r = client.post("/tokenize", json={"prompt": PROMPT, "messages": MESSAGES})
    assert r.status_code == 400 and "not both or neither" in r.json()["error"]["message"]
    r = client.post("/tokenize", json={"messages": MESSAGES})
    assert r.status_code == 400 and "no chat template" in r.json()["error"]["message"]


def test_a_stop_text_ends_the_completion_before_it_whole_and_streamed(tiny):
    client = TestClient(create_app(tiny))
    body = {"prompt": "The scheduler", "max_tokens": 12, "temperature": 0}
    full = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    stop = full[3:6]
    assert stop.strip()
    cut = client.post("/v1/completions", json={**body, "stop": [stop, "never seen"]}).json()["choices"][0]
    assert cut["text"] == full[: full.index(stop)] and cut["finish_reason"] == "stop" and cut["stop_reason"] == stop
    with client.stream("POST", "/v1/completions", json={**body, "stop": stop, "stream": True}) as r:
        import json

        chunks = [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: {")]
    assert "".join(c["choices"][0]["text"] for c in chunks) == cut["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


# --- the official client, on the app and on vLLM --------------------------------------------------
def ask(client, model: str) -> dict:
    """Both endpoints, whole and streamed, greedy, with logprobs: what the comparison reads."""
    chat = client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3
    )
    stream = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=8, temperature=0, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    text = client.completions.create(model=model, prompt=PROMPT, max_tokens=8, temperature=0, logprobs=3)
    chunks = client.completions.create(model=model, prompt=PROMPT, max_tokens=8, temperature=0, stream=True)
    return {
        "chat": chat.choices[0].message.content,
        "chat_prompt_tokens": chat.usage.prompt_tokens,
        "chat_logprobs": [(c.token, c.logprob) for c in chat.choices[0].logprobs.content],
        "chat_streamed": streamed,
        "text": text.choices[0].text,
        "text_prompt_tokens": text.usage.prompt_tokens,
        "text_top": text.choices[0].logprobs.top_logprobs[0],
        "text_streamed": "".join(c.choices[0].text for c in chunks if c.choices),
        "stopped": client.completions.create(
            model=model, prompt=PROMPT, max_tokens=8, temperature=0, stop=[text.choices[0].text[4:7]]
        ).choices[0],
    }


@pytest.fixture(scope="module")
def app_answers(smol):
    import openai

    with app_serving(create_app(smol)) as url:
        yield ask(openai.OpenAI(base_url=f"{url}/v1", api_key="none"), smol.model)


def test_the_openai_client_reads_the_apps_answers_whole_and_streamed(app_answers, smol):
    a = app_answers
    assert a["chat"] == a["chat_streamed"] and a["text"] == a["text_streamed"]
    assert a["chat_prompt_tokens"] == len(smol.encode(smol.chat_text(MESSAGES)))
    assert a["text_prompt_tokens"] == len(smol.encode(PROMPT))
    assert a["stopped"].finish_reason == "stop" and a["stopped"].text == a["text"][: a["text"].index(a["text"][4:7])]


def test_the_app_and_vllm_answer_the_openai_client_alike(app_answers, vllm_url):
    import openai

    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(vllm_url, log=lambda message: None)
    v = ask(openai.OpenAI(base_url=f"{server.root}/v1", api_key="none"), server.model)
    a = app_answers
    assert v["chat_prompt_tokens"] == a["chat_prompt_tokens"] and v["text_prompt_tokens"] == a["text_prompt_tokens"]
    assert v["chat"] == a["chat"] and v["text"] == a["text"]  # greedy on the same float32 weights
    assert v["chat"] == v["chat_streamed"] and v["text"] == v["text_streamed"]
    for (vt, vl), (at, al) in zip(v["chat_logprobs"], a["chat_logprobs"], strict=True):
        assert vt == at and math.isclose(vl, al, abs_tol=2e-2)
    assert list(v["text_top"]) == list(a["text_top"])
    for token, logprob in v["text_top"].items():
        assert math.isclose(logprob, a["text_top"][token], abs_tol=2e-2)
    assert v["stopped"].finish_reason == a["stopped"].finish_reason == "stop"
    assert v["stopped"].text == a["stopped"].text and v["stopped"].stop_reason == a["stopped"].stop_reason
