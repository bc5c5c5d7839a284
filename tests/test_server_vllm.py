"""The server backend against vLLM's shapes.

vLLM needs a GPU and can't run here, so these tests talk over real HTTP to `FakeVLLM`
(tests/servers.py), which answers with vLLM's documented response shapes: "token_id:N" keys,
the sampled token first, -9999.0 for -inf, null values, the 400 "max allowed: 20" error.
"""

import json
import math

import pytest

from servers import FakeVLLM, fake_vllm
from tokenloop.backends.server import ServerBackend
from tokenloop.cli import main
from tokenloop.errors import UsageError
from tokenloop.loop import generate, next_token
from tokenloop.records import Done, Step


def backend_for(fake: FakeVLLM, url: str, **options) -> ServerBackend:
    return ServerBackend(url, log=lambda message: None, **options)


def test_finds_vllm_its_context_and_version():
    with fake_vllm(fake := FakeVLLM()) as url:
        backend = backend_for(fake, url)
        assert (backend.caps.kind, backend.model, backend.context_length, backend.caps.version) == ("vLLM", "org/big-model", 4096, "0.11.0")
        assert backend.caps.prompt_ids and backend.caps.endpoint == "/v1/completions"
        with pytest.raises(UsageError, match="it serves: org/big-model"):
            backend_for(fake, url, model="org/other")


def test_token_id_loop_sends_ids_and_keys_candidates_by_id():
    with fake_vllm(fake := FakeVLLM()) as url:
        backend = backend_for(fake, url)
        ids = backend.encode("abc")
        result = next_token(backend, ids, k=5)
        [body] = [body for _, path, body in fake.requests if path == "/v1/completions"]
        assert body["prompt"] == [97, 98, 99] and body["max_tokens"] == 1 and body["return_tokens_as_token_ids"]
        expected_first, table = fake.distribution(ids, 5)
        assert [c.id for c in result.top] == list(table)
        assert [c.token for c in result.top] == [chr(i) for i in table]  # detokenized, not "token_id:N"
        assert [c.prob for c in result.top] == pytest.approx([math.exp(v) for v in table.values()])


def test_logprobs_over_the_cap_are_lowered_with_a_note_and_the_run_goes_on():
    notes = []
    with fake_vllm(fake := FakeVLLM(max_logprobs=20)) as url:
        backend = ServerBackend(url, log=notes.append)
        steps = [r for r in generate(backend, backend.encode("ab"), max_new=3, show=50) if isinstance(r, Step)]
        assert len(steps) == 3
        assert all(s.extra["logprobs_cap"] == 20 and len(s.top) == 20 for s in steps)
        assert backend.max_top_k == 20
        assert any("at most 20 logprobs" in n for n in notes)
        assert sum(1 for _, path, body in fake.requests if body.get("logprobs") == 50) == 1  # asked once, then capped


def test_minus_9999_null_and_nan_values():
    with fake_vllm(fake := FakeVLLM(mode="odd")) as url:
        backend = backend_for(fake, url)
        step = next(iter(generate(backend, backend.encode("ab"), max_new=1, show=30)))
        by_id = {c.id: c for c in step.top}
        assert by_id[1].prob == 0.0 and by_id[1].logprob == -math.inf  # -9999.0 is "impossible"
        assert 3 not in by_id and 4 not in by_id  # null and NaN are missing, not zero
        assert step.extra["missing_logprobs"] == 2
        assert json.loads(json.dumps(step.to_json()))["top"][-1]["logprob"] is None  # -inf stays valid JSON


def test_a_server_without_logprobs_is_a_one_line_error(capsys):
    with fake_vllm(FakeVLLM(mode="no_logprobs")) as url:
        assert main(["next", "abc", "--url", url]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tokenloop: the vLLM server") and "returned no logprobs" in err and "(at step 1)" in err
    assert "\n" not in err


def test_end_token_learned_by_id_from_the_servers_stop():
    with fake_vllm(fake := FakeVLLM(end_after=6)) as url:
        backend = backend_for(fake, url)
        records = list(generate(backend, backend.encode("abcd"), max_new=10))
        done = records[-1]
        assert isinstance(done, Done) and done.stop == "eos" and done.ids[-1] == fake.eos
        assert fake.eos in backend.eos_ids


def test_streaming_gives_the_same_greedy_tokens_as_one_call_per_token():
    with fake_vllm(fake := FakeVLLM(end_after=12)) as url:
        backend = backend_for(fake, url, stream=True)
        looped = list(backend.generate.__func__(backend_for(fake, url), backend.encode("abc"), max_new=20))
        streamed = list(backend.generate(backend.encode("abc"), max_new=20))
        assert streamed[-1].ids == looped[-1].ids and streamed[-1].stop == looped[-1].stop == "eos"
        assert all(s.extra["mode"] == "stream" for s in streamed[:-1])
        assert sum(1 for _, path, body in fake.requests if body.get("stream")) == 1


def test_sampling_over_the_top_k_is_labelled_renormalised():
    with fake_vllm(fake := FakeVLLM()) as url:
        backend = backend_for(fake, url)
        from tokenloop.sampling import Sampler

        steps = [r for r in backend.generate(backend.encode("ab"), max_new=3, sampler=Sampler(0.8), show=5, seed=1) if isinstance(r, Step)]
        assert all(s.sampler == "T=0.8 over the server's top-5, renormalised" for s in steps)
        assert all(s.processed is not None and sum(c.prob for c in s.processed) == pytest.approx(1.0) for s in steps)


def test_server_sample_lets_the_server_pick():
    with fake_vllm(fake := FakeVLLM()) as url:
        backend = backend_for(fake, url, server_sample=True)
        from tokenloop.sampling import Sampler

        records = list(backend.generate(backend.encode("ab"), max_new=2, sampler=Sampler(0.7, top_p=0.9), seed=5))
        sent = [body for _, path, body in fake.requests if path == "/v1/completions"]
        assert [(b["temperature"], b["top_p"], b["seed"]) for b in sent] == [(0.7, 0.9, 6), (0.7, 0.9, 7)]
        assert records[0].sampler == "T=0.7 top_p=0.9 by the server"


def test_chat_prompt_is_tokenized_by_the_server_with_messages():
    with fake_vllm(fake := FakeVLLM()) as url:
        backend = backend_for(fake, url)
        ids = backend.encode("hi", chat=True)
        sent = [body for _, path, body in fake.requests if path == "/tokenize"][-1]
        assert sent["messages"] == [{"role": "user", "content": "hi"}] and sent["add_generation_prompt"]
        assert backend.decode(ids) == "<|user|>hi<|assistant|>"
