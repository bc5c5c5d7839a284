"""Every number a server sends goes through one checked reader: finite, in range, the right type, or
left out. Property tests over the reader and over each place that reads a server's numbers (the
wire's timings, /metrics, the KV cache's info labels, a stream's usage), then a hostile server
(FakeVLLM: no real server sends NaN, 1e400 or 10**400 where a count goes) through the CLI and the
page's routes. Also the side requests an answer may cause: bounded per answer, and a token whose
/detokenize answer can't be read costs one request, not a recursion.

Modules (src/tokenloop/): backends/server/numbers.py, backends/server/ids.py, cost/kv_capacity.py.
"""

from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from support.cli_runner import cli
from support.fake_vllm import FakeVLLM, fake_vllm

from tokenloop.backends.server import ServerBackend, metrics, numbers, wire
from tokenloop.backends.server.ids import LOOKUPS_PER_ANSWER, TokenTable
from tokenloop.cost import kv_capacity, kv_fill
from tokenloop.errors import ServerError
from tokenloop.web import create_app

# what a hostile server puts where a number goes (JSON can carry all of these; NaN and Infinity as
# Python's json writes them)
HOSTILE = [float("nan"), float("inf"), -float("inf"), 1e400, 10**400, -(10**400), "12", "", None, True, [], {}, -5]
anything = st.one_of(
    st.sampled_from(HOSTILE),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
)


@given(anything, st.floats(-1e16, 1e16), st.floats(-1e16, 1e16))
def test_the_reader_gives_a_finite_number_in_range_of_the_right_type_or_none(value, a, b):
    low, high = min(a, b), max(a, b)
    found = numbers.number(value, low, high)
    if found is not None:
        assert type(found) in (int, float) and math.isfinite(found) and low <= found <= high
        assert found == value and not isinstance(value, (bool, str))
    got = numbers.count(value)
    assert got is None or (type(got) is int and 0 <= got <= numbers.BIG)


@given(st.dictionaries(st.text(max_size=8), st.one_of(anything, st.dictionaries(st.text(max_size=4), anything))))
def test_a_servers_figures_keep_only_usable_numbers(data):
    def check(out):
        for value in out.values():
            if isinstance(value, dict):
                check(value)
            else:
                assert type(value) in (int, float) and math.isfinite(value) and abs(value) <= numbers.BIG

    check(numbers.figures(data))


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "usage": st.dictionaries(
                st.sampled_from(["prompt_tokens", "completion_tokens", "prompt_tokens_details"]), anything
            ),
            "timings": st.dictionaries(st.sampled_from(["prompt_ms", "predicted_ms", "cache_n", "prompt_n"]), anything),
        },
    )
)
def test_a_completions_timings_and_counts_are_sane_numbers(body):
    out = wire.server_numbers(body)
    for key, value in out.items():
        assert type(value) in (int, float) and math.isfinite(value) and value >= 0, (key, value)
    for key in ("cached_tokens", "prompt_tokens", "server_prompt_tokens"):
        assert key not in out or type(out[key]) is int


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["vllm:num_requests_running", "vllm:kv_cache_usage_perc"]),
            st.one_of(
                st.sampled_from(["NaN", "+Inf", "-Inf", "1e400", "nan", "0x10", "1_0"]),
                st.floats(allow_nan=False, allow_infinity=False).map(repr),
            ),
        ),
        max_size=6,
    )
)
def test_metrics_values_that_are_not_finite_numbers_are_skipped(lines):
    snap = metrics.parse("\n".join(f'{name}{{engine="0"}} {value}' for name, value in lines))
    for s in snap.samples:
        assert math.isfinite(s.value) and abs(s.value) <= metrics.HUGE
    for key in ("running", "kv_usage"):
        value = snap.value(key)
        assert value is None or math.isfinite(value)


LABELS = st.one_of(
    st.sampled_from(["nan", "inf", "1e400", "None", "", "-3", "0", "17", "128", "2176", "1.5"]), st.text(max_size=6)
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "block_size",
                "num_gpu_blocks",
                "kv_cache_size_tokens",
                "kv_cache_memory_bytes",
                "kv_cache_max_concurrency",
            ]
        ),
        LABELS,
    )
)
def test_the_kv_allocation_from_any_labels_is_finite_or_none_and_the_fill_plan_refuses_cleanly(labels):
    body = ",".join(f'{k}="{json.dumps(v)[1:-1]}"' for k, v in labels.items())
    snap = metrics.parse(f"vllm:cache_config_info{{{body}}} 1.0")
    allocation = kv_capacity.server_allocation(snap, 2048)
    for key in ("block_size", "blocks", "tokens", "memory_bytes", "bytes_per_token", "conversations"):
        assert allocation[key] is None or (math.isfinite(allocation[key]) and allocation[key] > 0)
    if allocation["tokens"]:
        assert kv_fill.plan(allocation["tokens"], 2048).requests >= 2
    else:
        assert allocation["unreadable"]
        with pytest.raises(ServerError, match="no usable KV cache size"):
            kv_fill.plan(allocation["tokens"], 2048)


# --- a hostile server, end to end -----------------------------------------------------------------
def _metrics_page(text: str) -> dict:
    return {"/metrics": (200, {"Content-Type": "text/plain"}, text.encode())}


@pytest.mark.parametrize(
    "info",
    [
        'vllm:cache_config_info{block_size="16"} 1.0',  # no block count
        'vllm:cache_config_info{block_size="16",num_gpu_blocks="nan"} 1.0',
        'vllm:cache_config_info{block_size="16",num_gpu_blocks="1e400",kv_cache_size_tokens="inf"} 1.0',
        'vllm:cache_config_info{block_size="x",num_gpu_blocks="-4"} 1.0',
    ],
)
def test_the_pages_kv_routes_answer_502_with_a_message_not_500(info):
    with fake_vllm(FakeVLLM(pages=_metrics_page(info))) as url:
        server = ServerBackend(url, log=lambda m: None)
        client = TestClient(create_app(server, server_url=url))
        for route in ("/api/live/kv_capacity?lesson=day07", "/api/live/kv_fill?lesson=day07"):
            r = client.post(route, json={"consent": True})
            assert r.status_code == 502 and "cache size" in r.text, (route, r.status_code, r.text)
        server.close()


@pytest.mark.parametrize(
    "extra",
    [
        {"usage": {"completion_tokens": 10**400, "prompt_tokens": 3}},
        {"usage": {"completion_tokens": float("nan")}},
        {"usage": {"completion_tokens": "5", "prompt_tokens_details": {"cached_tokens": 1e400}}},
        {"timings": {"prompt_ms": "12", "predicted_per_token_ms": float("inf"), "cache_n": -1}},
        {"metrics": {"time_to_first_token_ms": 1e400, "queue_time_ms": "x", "mean_itl_ms": None}},
    ],
)
def test_latency_url_reads_a_hostile_servers_numbers_without_a_traceback(capsys, extra):
    metrics_text = "vllm:num_requests_running NaN\nvllm:kv_cache_usage_perc 1e400\nvllm:prompt_tokens_total +Inf\n"
    fake = FakeVLLM(end_after=10**9, stream_text=True, chunk_extra=extra, pages=_metrics_page(metrics_text))
    with fake_vllm(fake) as url:
        code, out, err = cli(
            capsys, "latency", "--url", url, "--max-tokens", "3", "--points", "2", "--repeats", "1", "--json"
        )
    assert code == 0, err
    data = json.loads(out)  # strict JSON: no NaN, no Infinity
    assert data["metrics"]["completed"] == 2


def test_an_oversized_optional_metrics_page_is_skipped_not_fatal(capsys):
    big = "vllm:num_requests_running 0\n" * (metrics.MAX_METRICS // 20)
    with fake_vllm(FakeVLLM(end_after=10**9, stream_text=True, pages=_metrics_page(big))) as url:
        code, out, err = cli(
            capsys, "latency", "--url", url, "--max-tokens", "3", "--points", "2", "--repeats", "1", "--json"
        )
    assert code == 0, err
    assert json.loads(out)["split"] is None  # no /metrics read: no split, and the run went on


def test_a_stream_with_cr_only_line_ends_is_read(capsys):
    with fake_vllm(FakeVLLM(end_after=10**9, stream_text=True, eol="\r")) as url:
        code, out, err = cli(
            capsys, "latency", "--url", url, "--max-tokens", "3", "--points", "2", "--repeats", "1", "--json"
        )
    assert code == 0, err
    assert {s["tokens"] for s in json.loads(out)["series"]} == {1, 3}


# --- side requests ----------------------------------------------------------------------------------
@settings(max_examples=30)
@given(st.sampled_from([None, "", 5, [], {"prompt": None}, {"prompt": 7}, "x" * 3]))
def test_a_token_whose_detokenize_answer_cant_be_read_costs_one_request_not_a_recursion(answer):
    calls = []

    def detokenize(ids):  # the backend's decode: the server's answer unreadable -> text_of -> token_text
        calls.append(ids)
        return answer if isinstance(answer, str) else table.text_of(ids)

    table = TokenTable(lambda text: None, detokenize)
    assert isinstance(table.token_text(2**40), str)
    assert len(calls) == 1


@pytest.mark.parametrize("returned", [[2**70], [-3], ["7"], [True], [1, 2]])
def test_a_tokenize_answer_that_is_not_one_token_id_gives_a_placeholder(returned):
    fake = FakeVLLM(
        pages={"/tokenize": (200, {"Content-Type": "application/json"}, json.dumps({"tokens": returned}).encode())}
    )
    with fake_vllm(fake) as url:
        backend = ServerBackend(url, log=lambda m: None)
        token_id = backend.tokens.id_of(wire.Entry(None, "token_id:" + str(2**70), -0.1))
        assert token_id < 0 and backend.token_text(token_id) == "token_id:" + str(2**70)
        backend.close()


def test_ten_thousand_candidates_keyed_by_text_cost_a_bounded_number_of_lookups():
    fake = FakeVLLM(top_by_text=10_000)
    with fake_vllm(fake) as url:
        backend = ServerBackend(url, log=lambda m: None)
        before = len(fake.requests)
        scores = backend.forward([104, 105], top_k=20)
        lookups = [r for r in fake.requests[before:] if r[1] == "/tokenize"]
        backend.close()
    assert 0 < len(lookups) <= LOOKUPS_PER_ANSWER and len(scores.values) == 10_000


def test_logprobs_adding_up_to_more_than_one_are_shown_with_a_note():
    notes = []
    with fake_vllm(FakeVLLM(top_by_text=100)) as url:
        backend = ServerBackend(url, log=notes.append)
        backend.forward([104, 105], top_k=20)
        backend.forward([104, 105, 106], top_k=20)
        backend.close()
    said = [n for n in notes if "add up to" in n]
    assert len(said) == 1 and "not at most 100%" in said[0]  # once a run, not once a step


def test_an_oversized_answer_is_said_as_such_not_as_a_crash(monkeypatch, capsys):
    from tokenloop.backends.server import client

    monkeypatch.setattr(client, "MAX_ANSWER", 1 << 20)
    with fake_vllm(FakeVLLM(raw=b" " * (2 << 20))) as url:
        code, out, err = cli(capsys, "next", "hi", "--url", url)
    assert code == 1 and "answered more than 1 MB" in err and "crashed" not in err, err


@pytest.mark.parametrize("env, args, said", [
    ("localhost:8080", ["next", "hi"], "$OPENAI_BASE_URL localhost:8080: give an http(s) URL"),
    ("http://127.0.0.1:9/v1", ["probe"], "check $OPENAI_BASE_URL"),
    ("http://127.0.0.1:9/v1", ["next", "hi", "--url", "http://127.0.0.1:9/v1"], "check --url"),
])  # fmt: skip
def test_messages_name_openai_base_url_when_that_gave_the_url(capsys, monkeypatch, env, args, said):
    monkeypatch.setenv("OPENAI_BASE_URL", env)
    code, out, err = cli(capsys, *args)
    assert code in (1, 2) and said in err and err.count("\n") == 1, err


def test_model_runs_the_local_model_even_with_openai_base_url_set(capsys, monkeypatch, tiny_model_dir):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    code, out, err = cli(capsys, "next", "hi", "--model", str(tiny_model_dir), "--json")
    assert code == 0 and json.loads(out)["backend"] == "embedded", err


# --- stream lines: any split, any line end, linear time -------------------------------------------
class _Parts:
    """A response whose body arrives in the given parts (what httpx's iter_bytes yields)."""

    def __init__(self, parts):
        self.parts = parts

    def iter_bytes(self):
        yield from self.parts


@given(st.lists(st.text("ab:{} ", max_size=12), min_size=1, max_size=8),
       st.lists(st.sampled_from(["\n", "\r", "\r\n"]), min_size=8, max_size=8), st.data())  # fmt: skip
def test_stream_lines_are_the_same_however_the_bytes_are_split_and_whatever_ends_them(lines, ends, data):
    from tokenloop.backends.server.client import _lines

    body = "".join(line + end for line, end in zip(lines, ends)).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=6)))
    parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
    got = [line for line in _lines(_Parts(parts), 60) if line]
    assert got == [line for line in lines if line]


def test_a_20_mb_stream_line_is_read_in_one_pass():
    import time

    from tokenloop.backends.server.client import _lines

    line = b"data: " + b"x" * (20 << 20)
    parts = [line[i : i + (16 << 10)] for i in range(0, len(line), 16 << 10)] + [b"\n\n"]
    start = time.perf_counter()
    got = list(_lines(_Parts(parts), 60))
    assert len(got[0]) == len(line) and time.perf_counter() - start < 5  # quadratic: minutes


@given(st.integers(0, 10**300))
def test_a_cap_or_context_named_in_a_servers_error_is_a_sane_count_or_none(n):
    cap = wire.logprobs_cap(f"Requested sample logprobs of 9, which is greater than max allowed: {n}")
    context = wire.context_limit(f"This model's maximum context length is {n} tokens")
    assert cap == (n if n <= 1 << 20 else None)
    assert context == (n if n <= 1 << 30 else None)
