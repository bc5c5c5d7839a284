"""Everything a server sends is untrusted: the wire-shape parsers take any JSON value (any number
size, NaN and infinities, any string with lone surrogates included) and give records, never an
exception, and nothing they give back can break JSON or the terminal."""

import functools
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenloop.backends.server import dialects, wire

texts = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    ["token_id:7", "token_id:99999999999999999999", "\ud800", "bytes:\\xe2", "", "\ufffd"]
)
numbers = (
    st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([-9999.0, 0, -0.0, 10**400, -(10**400)])
)
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=24
)
# Shapes near the real ones, so the parsers' deeper branches are reached, with any values inside.
content_items = st.fixed_dictionaries(
    {}, optional={"id": json_values, "token": json_values, "logprob": json_values, "top_logprobs": json_values}
)
near_content = st.lists(content_items, max_size=3) | st.fixed_dictionaries(
    {"content": st.lists(content_items, max_size=3)}
)
near_legacy = st.fixed_dictionaries(
    {},
    optional={
        "tokens": st.lists(json_values, max_size=3) | json_values,
        "token_logprobs": st.lists(json_values, max_size=3) | json_values,
        "top_logprobs": st.lists(st.dictionaries(texts, json_values, max_size=3) | json_values, max_size=3)
        | json_values,
    },
)
near_error = st.fixed_dictionaries(
    {},
    optional={
        "error": json_values | st.fixed_dictionaries({}, optional={"message": json_values}),
        "message": json_values,
        "detail": json_values | st.lists(st.fixed_dictionaries({}, optional={"loc": json_values, "msg": json_values})),
        "usage": json_values
        | st.fixed_dictionaries({}, optional={"prompt_tokens": numbers, "prompt_tokens_details": json_values}),
        "timings": json_values
        | st.fixed_dictionaries(
            {}, optional={k: numbers for k in ("prompt_ms", "predicted_ms", "cache_n", "prompt_n")}
        ),
        "content": json_values,
        "prompt": json_values,
        "text": json_values,
    },
)
anything = json_values | near_content | near_legacy | near_error


def printable(text: str) -> bool:
    text.encode("utf-8")  # raises on a lone surrogate
    return True


@settings(max_examples=400, deadline=None)
@given(anything)
def test_positions_take_any_json_and_give_clean_entries(logprobs):
    for position in wire.positions(logprobs):
        entries = position.top + ([position.chosen] if position.chosen else [])
        for entry in entries:
            assert entry.id is None or 0 <= entry.id < 2**31
            assert printable(entry.text)
            assert entry.logprob == -math.inf or (math.isfinite(entry.logprob) and entry.logprob <= 0)
        assert position.missing >= 0
        assert [e.logprob for e in position.top] == sorted((e.logprob for e in position.top), reverse=True)


@settings(max_examples=300, deadline=None)
@given(anything)
def test_numbers_errors_and_text_take_any_json(body):
    numbers = wire.server_numbers(body)
    json.dumps(numbers, allow_nan=False)  # only finite numbers go into a step's JSON
    assert all(0 <= value < 2**31 or key.endswith("_ms") for key, value in numbers.items())
    assert printable(wire.error_message(400, body, ""))
    text = dialects.detokenized_text(body)
    assert text is None or printable(text)
    wire.logprobs_cap(wire.error_message(400, body))
    wire.shape_of(body)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(anything.map(lambda v: "data: " + json.dumps(v)), texts, st.just("data: [DONE]")), max_size=6)
)
def test_a_stream_of_any_lines_gives_objects_or_a_server_error(lines):
    """The SSE path: any lines a server streams give JSON objects in order, or one ServerError."""
    import httpx

    from tokenloop.errors import ServerError

    response = httpx.Response(200, content="\n".join(lines).encode("utf-8", "surrogatepass"))
    try:
        for chunk in client()._chunks(response, "/v1/completions", lambda: 1):
            assert isinstance(chunk, dict)
    except ServerError as error:
        assert printable(str(error)) and "\n" not in str(error)  # one line, whatever the server sent


@functools.cache
def client():
    """One client for every example: making one (its TLS context) takes about 50 ms, 300 times over.
    `_chunks` reads only the response it is given; nothing is sent."""
    from tokenloop.backends.server import Client

    return Client("http://127.0.0.1:9")
