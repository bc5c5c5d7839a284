"""The response shapes of OpenAI-compatible servers, parsed without a server (backends/server/wire.py),
and the dialects of server told apart by their facts (backends/server/dialects.py).

vLLM and SGLang need GPUs and can't run here: their fixtures below are built from their documented
formats (vLLM's OpenAI-compatible server docs and `serving_completion.py`: the legacy shape, the
sampled token first, -inf written as -9999.0, "token_id:N" keys under `return_tokens_as_token_ids`,
the 400 "max allowed: 20" message; SGLang uses the same legacy shape). The llama.cpp and
llama-cpp-python fixtures are trimmed copies of what those servers answered here.
"""

import math

import pytest

from tokenloop.backends.server import base_url, dialects, wire
from tokenloop.errors import UsageError
from tokenloop.sampling import Sampler

# vLLM /v1/completions, logprobs=4, return_tokens_as_token_ids: the sampled token (not the most
# likely) comes first, one entry is -9999.0 (vLLM's JSON -inf), one is null.
VLLM_IDS = {
    "text_offset": [0],
    "token_logprobs": [-1.9],
    "tokens": ["token_id:3681"],
    "top_logprobs": [
        {
            "token_id:3681": -1.9,
            "token_id:12366": -0.4,
            "token_id:279": -1.2,
            "token_id:0": -9999.0,
            "token_id:17": None,
        }
    ],
}

# The same position without token ids: two different tokens that print alike ("�" byte pieces)
# land in one key, so one of them is lost (vLLM #44319).
VLLM_TEXT = {
    "tokens": [" Paris"],
    "token_logprobs": [-0.4],
    "top_logprobs": [{" Paris": -0.4, "\ufffd": -2.5, " the": -1.2}],
}

# llama.cpp /completion, n_probs=3: ids and bytes; the end token's string is empty.
LLAMA_CPP = [
    {
        "id": 2,
        "token": "",
        "bytes": [],
        "logprob": -0.154,
        "top_logprobs": [
            {"id": 2, "token": "", "bytes": [], "logprob": -0.154},
            {"id": 198, "token": "\n", "bytes": [10], "logprob": -2.4},
            {"id": 216, "token": " ", "bytes": [32], "logprob": -4.0},
        ],
    }
]


def test_vllm_token_id_keys_are_sorted_with_minus_9999_as_minus_inf_and_null_left_out():
    [position] = wire.positions(VLLM_IDS)
    assert [e.id for e in position.top] == [12366, 279, 3681, 0]  # most likely first, not sampled first
    assert position.top[-1].logprob == -math.inf
    assert position.missing == 1  # the null entry
    assert position.chosen.id == 3681 and position.chosen.logprob == pytest.approx(-1.9)
    assert wire.keyed_by(position) == "token_id:N"


def test_string_keys_collide_and_lose_a_candidate_that_token_ids_keep():
    [by_text] = wire.positions(VLLM_TEXT)
    assert [e.id for e in by_text.top] == [None, None, None]
    assert wire.keyed_by(by_text) == "text"
    # the JSON object itself can hold only one "\ufffd": a second byte token is gone before we see it
    with_ids = {
        "tokens": ["token_id:7"],
        "token_logprobs": [-0.4],
        "top_logprobs": [{"token_id:7": -0.4, "token_id:226": -2.5, "token_id:227": -2.6}],
    }
    [by_id] = wire.positions(with_ids)
    assert {e.id for e in by_id.top} == {7, 226, 227}


def test_llama_cpp_content_shape_keeps_ids_and_the_empty_end_token():
    [position] = wire.positions(LLAMA_CPP)
    assert [e.id for e in position.top] == [2, 198, 216]
    assert position.top[0].text == ""  # display text must come from /detokenize, not from here
    assert wire.shape_of(LLAMA_CPP) == "content" and wire.shape_of({"content": LLAMA_CPP}) == "content"


@pytest.mark.parametrize(
    "raw, expected",
    [
        (-9999.0, -math.inf),
        (-12000, -math.inf),
        (None, None),
        (float("nan"), None),
        ("x", None),
        (True, None),
        (-0.5, -0.5),
        (1e-7, 0.0),
    ],
)
def test_logprob_values(raw, expected):
    assert wire.logprob_value(raw) == expected


def test_fewer_entries_than_asked_and_no_logprobs():
    [position] = wire.positions({"tokens": ["a"], "token_logprobs": [-0.1], "top_logprobs": [{"a": -0.1}]})
    assert len(position.top) == 1
    assert wire.positions(None) == [] and wire.positions({}) == []
    [empty] = wire.positions({"tokens": ["a"], "token_logprobs": [None], "top_logprobs": [None]})
    assert empty.top == [] and empty.chosen is None


def test_error_messages_of_each_server():
    vllm_new = {
        "error": {
            "message": "Requested sample logprobs of 50, which is greater than max allowed: 20",
            "type": "BadRequestError",
            "code": 400,
        }
    }
    vllm_old = {"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404}
    fastapi_422 = {
        "detail": [{"type": "string_type", "loc": ["body", "prompt"], "msg": "Input should be a valid string"}]
    }
    llama_cpp = {
        "error": {
            "code": 400,
            "message": "the request exceeds the available context size",
            "type": "exceed_context_size_error",
        }
    }
    assert wire.logprobs_cap(wire.error_message(400, vllm_new)) == 20
    assert wire.error_message(404, vllm_old) == "The model `x` does not exist."
    assert wire.error_message(422, fastapi_422) == "Input should be a valid string (body.prompt)"
    assert wire.is_context_error(wire.error_message(400, llama_cpp))
    assert wire.logprobs_cap("max_tokens is greater than max allowed: 20") is None  # not about logprobs
    assert wire.context_limit("Requested tokens (2100) exceed context window of 2048") == 2048
    assert wire.error_message(502, None, "<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"


def test_server_numbers_from_llama_cpp_timings_and_openai_usage():
    numbers = wire.server_numbers(
        {
            "timings": {"cache_n": 7, "prompt_n": 1, "prompt_ms": 3.5, "predicted_ms": 0.5},
            "usage": {"prompt_tokens": 8, "prompt_tokens_details": {"cached_tokens": 7}},
        }
    )
    assert numbers == {
        "cached_tokens": 7,
        "prompt_tokens": 8,
        "server_ms": 4.0,
        "server_prompt_ms": 3.5,
        "server_prompt_tokens": 1,
    }
    assert wire.server_numbers({"usage": {"prompt_tokens_details": None}}) == {}


def test_request_bodies_switch_off_each_servers_own_sampler():
    greedy = dialects.completion_body(dialects.VLLM, "m", [1, 2], 8)
    assert greedy["prompt"] == [1, 2] and greedy["max_tokens"] == 1 and greedy["logprobs"] == 8
    assert greedy["temperature"] == 0.0 and greedy["return_tokens_as_token_ids"] is True
    native = dialects.completion_body(dialects.LLAMA_CPP, "m", [1, 2], 8, cache=False, stream=True)
    assert native["n_probs"] == 8 and native["n_predict"] == 1 and native["cache_prompt"] is False
    assert native["min_p"] == 0.0 and native["top_k"] == 0 and "stream_options" not in native
    sampled = dialects.completion_body(dialects.LLAMA_CPP_PYTHON, "m", "text", 5, sampler=Sampler(0.8, 20, 0.9), seed=3)
    assert (sampled["temperature"], sampled["top_k"], sampled["top_p"], sampled["seed"]) == (0.8, 20, 0.9, 3)
    assert sampled["repeat_penalty"] == 1.0  # llama-cpp-python's default 1.1 would bend even greedy picks


def test_base_url_accepts_with_or_without_v1():
    assert base_url("http://h:8000/v1/") == "http://h:8000"
    assert base_url("http://h:8000") == "http://h:8000"
    with pytest.raises(UsageError):
        base_url("localhost:8000")
