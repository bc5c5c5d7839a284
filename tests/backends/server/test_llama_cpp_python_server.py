"""The server backend against a real llama-cpp-python server serving the embedded model's GGUF: the
text fallback's peer (a list of ids as the prompt is refused, logprobs are keyed by token string,
the tokenizer is at /extras/tokenize, a new request interrupts a running stream).

Modules (src/tokenloop/): backends/server/ids.py, backends/server/discover.py.
"""

import json

import pytest

from tokenloop.backends.server import ServerBackend
from tokenloop.cli import main
from tokenloop.loop import generate, next_token
from tokenloop.records import Step

PROMPTS = ["Kubernetes pods are scheduled by the", "The capital of France is", "def fibonacci(n):\n   "]

# Same reasoning and measurements as tests/backends/server/test_llama_server.py: llama.cpp's Q8_1-rounded
# activations against the embedded fp32 ones, on the same Q4_1 weights.
TOLERANCE = 0.1


@pytest.fixture(scope="module")
def notes():
    return []


@pytest.fixture(scope="module")
def llamapy(llama_python_url, notes):
    return ServerBackend(llama_python_url, log=notes.append)


def test_probe_finds_the_text_fallback(llamapy, notes):
    caps = llamapy.probe()
    assert caps.kind == "llama-cpp-python" and caps.tokenize == "/extras/tokenize"
    assert not caps.prompt_ids and "ids_refused" in caps.checks  # tried live: a list of ids is refused
    assert (caps.checks["shape"], caps.checks["keyed_by"]) == ("legacy", "text")
    assert any("takes no token ids" in note for note in notes)  # the visible warning


def test_text_mode_agrees_with_the_embedded_model(llamapy, smol):
    near_ties = 0
    for prompt in PROMPTS:
        ids = llamapy.encode(prompt)
        assert ids == smol.encode(prompt)
        remote, local = next_token(llamapy, ids, 5), next_token(smol, ids, 5)
        # candidates came as strings; their ids were found through /extras/tokenize
        remote_probs = {c.id: c.prob for c in remote.top}
        for c in local.top:
            assert abs(remote_probs.get(c.id, 0.0) - c.prob) < TOLERANCE, (prompt, c)
        if remote.top[0].id != local.top[0].id:
            assert local.top[0].prob - local.top[1].prob < TOLERANCE
            near_ties += 1
    assert near_ties <= 1


def test_one_call_per_token_and_streaming_give_the_same_greedy_text(llama_python_url):
    """In text mode they agree as long as the text re-tokenizes into the tokens generated so far;
    where it does not, the one-call loop sends the server a different token sequence (the reason
    the token-id loop never re-sends text)."""
    looped = ServerBackend(llama_python_url, log=lambda m: None)
    streamed = ServerBackend(llama_python_url, log=lambda m: None, stream=True)
    for prompt in PROMPTS[:2]:
        a = list(generate(looped, looped.encode(prompt), max_new=10))
        b = list(generate(streamed, streamed.encode(prompt), max_new=10))
        assert len(b) == 11  # the stream was not cut short by a request of ours
        assert all(s.extra["sent"] == "text" for s in a[:-1] + b[:-1])
        ids, new = looped.encode(prompt), a[-1].ids
        same = next(
            (k for k in range(1, len(new)) if looped.encode(prompt + looped.decode(new[:k])) != ids + new[:k]), len(new)
        )
        assert same >= 3 and new[:same] == b[-1].ids[:same]  # token same+1 was asked for after a re-split text
        if same == len(new):
            assert a[-1].text == b[-1].text


def test_run_json_lines_in_text_mode(capsys, llama_python_url):
    assert main(["run", PROMPTS[1], "--url", llama_python_url, "--max-new", "3", "--json"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line.get("step") for line in lines[:-1]] == [1, 2, 3] and lines[-1]["done"]
    assert "takes no token ids" in captured.err


def test_prompt_over_the_servers_context(capsys, llama_python_url):
    """llama-cpp-python does not report its context length: its own error says it, in one line."""
    assert main(["next", "pods " * 2100, "--url", llama_python_url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("tokenloop: the prompt is too long") and "2048" in err[-1] and "shorten" in err[-1]


def test_server_sample_sends_the_sampler_and_shows_its_pick(llama_python_url):
    from tokenloop.sampling import Sampler

    backend = ServerBackend(llama_python_url, log=lambda m: None, server_sample=True)
    records = list(generate(backend, backend.encode(PROMPTS[0]), max_new=3, sampler=Sampler(1.0, top_k=5), seed=7))
    steps = [r for r in records if isinstance(r, Step)]
    assert all(s.sampler == "T=1 top_k=5 by the server" for s in steps)
    assert all(s.chosen.id in {c.id for c in s.top} for s in steps)  # top-k 5 on the server: one of the top 5
