"""The lessons as a set, their step kinds checked on load, and Lesson 7's plain parts: the fill's
plan and consent, and reading a server's KV allocation. The API runs on the tiny model; the live
steps against the real model and a real vLLM are in test_web_lesson7.py.

Modules (src/tokenloop/): lessons/content.py, web/lessons.py, web/live.py, cost/context.py,
cost/kv_capacity.py, cost/kv_causal.py, cost/kv_fill.py, latency/answer_time.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tokenloop.backends.server.metrics import parse
from tokenloop.cost import kv_capacity, kv_fill
from tokenloop.errors import UsageError
from tokenloop.lessons import content
from tokenloop.web import create_app


@pytest.fixture
def client(tiny):
    return TestClient(create_app(tiny))


def test_every_lesson_is_listed_with_its_title_and_served_by_name(client):
    listed = client.get("/api/lessons").json()
    assert [item["id"] for item in listed] == content.available()
    assert {"day01", "day07"} <= {item["id"] for item in listed}
    for item in listed:
        lesson = client.get(f"/api/lesson?name={item['id']}").json()
        assert lesson["id"] == item["id"] and lesson["title"] == item["title"]
    assert client.get("/api/lesson").json()["id"] == "day01"  # the app's own lesson by default


@pytest.mark.parametrize("name", ["day99", "../day01", "DAY01", ""])
def test_an_unknown_lesson_name_is_a_one_line_error(client, name):
    response = client.get("/api/lesson", params={"name": name})
    assert response.status_code == 400
    assert "choose one of day01" in response.json()["error"] and "\n" not in response.json()["error"]


def test_every_measured_step_of_every_lesson_has_an_honesty_tag():
    for name in content.available():
        lesson = content.load(name)
        for step in lesson["steps"]:
            if step.get("live"):
                assert step.get("honesty") in content.HONESTY, (name, step["id"])
                assert step.get("cpu_note") or lesson["honesty"][step["honesty"]]


def test_a_lesson_missing_what_the_page_reads_is_a_one_line_error():
    lesson = content.load("day07")
    for broken, says in [
        ({k: v for k, v in lesson.items() if k != "cluster"}, "no 'cluster' section"),
        ({**lesson, "teacher": {k: v for k, v in lesson["teacher"].items() if k != "actions"}}, "no 'actions'"),
        ({**lesson, "honesty": {}}, "no sentence says what that means on a CPU"),
    ]:
        with pytest.raises(UsageError, match=says) as caught:
            content.check("day07", broken)
        assert "fix lessons/day07.yaml" in str(caught.value) or "cpu_note" in str(caught.value)


@pytest.mark.parametrize(
    "step, says",
    [
        ({"id": "s", "kind": "slider"}, "use one of choice"),
        ({"id": "s", "kind": "estimate", "unit": "bytes", "min": 1, "max": 10}, "no honesty tag"),
        ({"id": "s", "kind": "estimate", "unit": "parsecs", "min": 1, "max": 10, "honesty": "exact"}, "unit"),
        ({"id": "s", "kind": "estimate", "unit": "ms", "min": 0, "max": 10, "honesty": "exact"}, "0 < min < max"),
        ({"id": "s", "kind": "estimate", "unit": "ms", "min": 5, "max": 1, "honesty": "exact"}, "0 < min < max"),
        ({"id": "s", "kind": "curve", "honesty": "shape", "curves": [{"label": "a", "answer": "zigzag"}]}, "curves"),
        ({"id": "s", "kind": "curve", "honesty": "shape"}, "curves"),
        ({"id": "s", "kind": "curve", "honesty": "roughly", "curves": [{"label": "a", "answer": "flat"}]}, "honesty"),
    ],
)
def test_a_bad_step_is_a_one_line_error_naming_it(step, says):
    with pytest.raises(UsageError, match=says) as caught:
        content.check_step("dayxx", step)
    assert "dayxx: step s" in str(caught.value) and "\n" not in str(caught.value)


def test_the_fill_asks_for_half_again_the_cache_in_a_few_requests():
    small = kv_fill.plan(2176, 2048)
    need = small.requests * (small.prompt_tokens + small.max_tokens)
    assert 1.5 * 2176 <= need < 1.5 * 2176 + small.prompt_tokens + small.max_tokens
    assert small.max_tokens < small.prompt_tokens  # prefill fills blocks fast; a short answer frees them soon
    assert f"sends {small.requests} requests" in small.text() and f"{small.seconds:g} s" in small.text()
    big = kv_fill.plan(10**6, 2048)
    assert (
        big.requests == kv_fill.MAX_REQUESTS
        and "expect no preemption" in big.text()
        and "8 requests at once" in big.why_not()
    )  # capped, and says so
    assert "no preemption" not in small.text() and small.reaches()
    short = kv_fill.plan(500, 256)
    assert short.prompt_tokens + short.max_tokens <= 256


@pytest.mark.parametrize("url", ["http://192.0.2.10:8000", "https://llm.example.com", "http://10.0.0.5:8000/v1"])
def test_the_fill_refuses_a_server_elsewhere_without_the_owners_say_so(url):
    with pytest.raises(UsageError, match="not this machine"):
        kv_fill.require_consent(url, consent=True, remote=False)
    kv_fill.require_consent(url, consent=True, remote=True)  # the owner ticked it: allowed


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8000/v1", "http://[::1]:8000"])
def test_the_fill_on_this_machine_still_needs_the_click(url):
    with pytest.raises(UsageError, match="press Start"):
        kv_fill.require_consent(url, consent=False, remote=False)
    kv_fill.require_consent(url, consent=True, remote=False)


def test_the_fill_route_refuses_a_remote_server_before_sending_anything(tiny):
    app = create_app(tiny, server_url="http://192.0.2.10:8000/v1")  # TEST-NET: nothing answers there
    response = TestClient(app).post("/api/live/kv_fill", json={"consent": True})
    assert response.status_code == 400 and "not this machine" in response.json()["error"]


def test_the_servers_allocation_is_read_from_its_cache_config_labels():
    # The labels' shape as vLLM 0.32 writes them (other labels elided); the values are any numbers.
    text = (
        'vllm:cache_config_info{block_size="16",cache_dtype="auto",engine="0",kv_cache_max_concurrency="None",'
        'kv_cache_memory_bytes="None",kv_cache_size_tokens="None",num_gpu_blocks="100"} 1.0\n'
    )
    got = kv_capacity.server_allocation(parse(text), 400)
    assert got["tokens"] == 1600 and got["conversations"] == 4 and got["bytes_per_token"] is None
    with pytest.raises(Exception, match="cache_config_info"):
        kv_capacity.server_allocation(parse("vllm:num_requests_running 0\n"), 400)


# --- the live parts' modules, on the tiny real model ------------------------------------------------
def test_earlier_keys_and_values_are_bit_for_bit_unchanged_by_one_more_token(tiny, tiny_model_dir):
    from tokenloop.cost import kv_causal

    model = kv_causal.scratch_model(str(tiny_model_dir))
    ids = tiny.encode("The scheduler places pods on nodes and the model predicts the next token")
    found = kv_causal.causal_check(model, ids)
    assert found["tokens"] == len(ids) - 1 and found["layers"] == model.config.layers
    assert found["max_abs_diff_k"] == 0.0 and found["max_abs_diff_v"] == 0.0
    held = found["cache"]
    assert held["tokens"] == len(ids) and held["bytes_per_token"] == held["predicted_bytes_per_token"]


def test_a_500_token_answer_is_the_first_token_and_499_steps(tiny):
    from tokenloop.latency import answer_time

    got = answer_time.embedded(tiny, "The scheduler places pods", steps=3)
    assert got["ttft_ms"] > 0 and got["itl_ms"] > 0 and got["measured_tokens"] == 4
    assert got["total_ms"] == pytest.approx(got["ttft_ms"] + 499 * got["itl_ms"])
    assert got["prefill_share"] == pytest.approx(got["ttft_ms"] / got["total_ms"])


def test_the_cached_step_is_timed_at_every_planned_context(tiny):
    from tokenloop.cost import context as context_cost

    got = context_cost.measure(tiny, longest=32, repeats=2)
    assert [p["context"] for p in got["points"]] == context_cost.lengths(32)
    assert all(p["ms"] > 0 for p in got["points"]) and got["ratio"] == got["points"][-1]["ms"] / got["points"][0]["ms"]


@pytest.mark.parametrize("cache, longest", [(23296, 4096), (23296, 32768), (40_000, 8192), (2176, 2048)])
def test_the_fill_grows_its_requests_to_reach_a_bigger_cache_within_max_model_len(cache, longest):
    """Issue 24: 8 requests of ~742 tokens never filled the default server's 23,296 tokens; the
    requests now grow up to the server's max_model_len until together they need more than the cache."""
    p = kv_fill.plan(cache, longest)
    assert p.prompt_tokens + p.max_tokens <= 0.9 * longest  # a margin for another tokenizer
    assert p.reaches() and p.asked >= cache and p.why_not() is None
    assert "expect a preemption" in p.text()


def test_a_fill_that_cannot_reach_says_why_with_the_sum():
    """The default test server: max_model_len 2,048, a cache of 23,296 tokens: 8 × ~1,820 can't fill it."""
    p = kv_fill.plan(23296, 2048)
    assert not p.reaches()
    assert f"= {p.asked:,} tokens, less than the cache's 23,296" in p.why_not()
    assert "max_model_len of 2,048" in p.why_not()
    assert p.to_json()["why_not"] == p.why_not()


def test_no_lesson_grades_a_word_another_lesson_taught():
    """Issue 24: Lesson 1 calls the climbing per-token cost the staircase; Lesson 7 step 2 once
    graded "staircase" wrong for the same curve. Every curve accepts the course's word for its case."""
    lessons = {name: content.load(name) for name in content.available()}
    content.check_vocabulary(lessons)  # the lessons as they are: consistent
    assert "staircase" in content.taught(lessons["day01"])
    seven = {**lessons["day07"], "steps": [dict(s) for s in lessons["day07"]["steps"]]}
    step = next(s for s in seven["steps"] if s.get("kind") == "curve")
    step["curves"] = [{**c, "answer": "line", "also": []} if "without" in c["label"] else c for c in step["curves"]]
    with pytest.raises(UsageError, match="grades 'staircase' wrong .* the word lesson day01 teaches"):
        content.check_vocabulary({**lessons, "day07": seven})


def test_recall_cards_sit_between_the_steps_and_name_the_step_they_follow():
    for name in content.available():
        lesson = content.load(name)
        steps = [s["id"] for s in lesson["steps"]]
        afters = [steps.index(card["after"]) for card in lesson["recall"]]
        assert afters == sorted(afters) and afters[0] > 0  # in order, and never before the idea is taught
    lesson = content.load("day01")
    broken = {**lesson, "recall": [{**lesson["recall"][0], "after": "nowhere"}]}
    with pytest.raises(UsageError, match="after: 'nowhere'"):
        content.check("day01", broken)


@pytest.mark.parametrize(
    "expect, says",
    [({"colour": "red"}, "expect.colour"), ({"top_over": 2}, "expect.top_over"), ({"same_text_as": "ghost"}, "ghost")],
)
def test_a_try_it_items_expect_is_checked_on_load(expect, says):
    lesson = content.load("day01")
    items = [{**lesson["try_it"]["items"][0], "expect": expect}]
    with pytest.raises(UsageError, match=says):
        content.check("day01", {**lesson, "try_it": {**lesson["try_it"], "items": items}})


def test_a_try_it_link_carries_its_lesson_so_the_lab_finds_its_note_and_links_back():
    for name in content.available():
        for item in content.load(name)["try_it"]["items"]:
            assert item["href"].endswith(f"try={item['id']}&lesson={name}")
