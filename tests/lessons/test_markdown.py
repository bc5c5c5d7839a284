"""The lesson as Markdown for the learner's own AI (`lessons.markdown.render`), the same from the
CLI (`tokenloop lesson --markdown`) and the page (`POST /api/lesson/markdown`); the try-it links
and the lab's settings they carry, checked when the lesson loads.

Modules (src/tokenloop/): lessons/markdown.py, commands/lesson.py, web/for_your_ai.py."""

from __future__ import annotations

import json
import math
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from support.cli_runner import cli, one_line_error

from tokenloop.errors import UsageError
from tokenloop.lessons import content
from tokenloop.lessons import markdown as lesson_markdown
from tokenloop.loop import next_token, prompt_ids
from tokenloop.web import create_app


@pytest.fixture
def client(tiny):
    small = {"steps": 2, "max_len": 16, "points": 2, "repeats": 1, "context_len": 32, "answer_steps": 2}
    return TestClient(create_app(tiny, demo=small))


def test_render_takes_every_word_from_the_lesson_and_every_number_from_live(tiny):
    lesson = content.load("day01")
    live = lesson_markdown.measure(tiny, lesson)
    live["guesses"] = {"loop": 0, "confidence": 12}
    text = lesson_markdown.render(lesson, live)
    top = next_token(tiny, prompt_ids(tiny, lesson["prompt"]), 8).top
    assert f"The top token got {lesson_markdown.percent(top[0].prob)}" in text
    assert text.count("\n| ") >= len(top)  # a table row per candidate
    for step in lesson["steps"]:
        assert step["title"] in text
    assert f"The learner guessed: {lesson['steps'][0]['choices'][0]} (wrong)." in text
    assert "The learner guessed: 12%." in text
    assert "Not measured in this copy: run the training demo" in text  # never a number the demo didn't make
    for part in (lesson["for_your_ai"]["instruction"], *(p["text"] for p in lesson["ask_your_ai"]["prompts"])):
        assert lesson_markdown.flat(part) in text
    assert lesson["read_next"]["source"]["url"] in text and lesson["read_next"]["notebook"]["command"] in text
    assert "Open it in the lab" not in text  # no app running: no links to one


def test_render_is_generic_over_lessons():
    """A lesson with none of day01's optional parts and a live kind this module has no words for."""
    lesson = {
        "title": "Lesson 9",
        "prompt": "hi",
        "steps": [
            {
                "id": "a",
                "title": "Step A",
                "kind": "probability",
                "question": "How many?",
                "explain": "So many.",
                "live": "queue",
            }
        ],
    }
    text = lesson_markdown.render(lesson, {"model": "m", "results": {"queue": {"waiting": 3}}})
    assert text.startswith("# Lesson 9\n") and "Step A" in text and '"waiting": 3' in text


def test_model_text_stays_text_in_the_markdown():
    for token in (" `x`", "a|b", "<script>", "\n"):
        shown = lesson_markdown.quoted(token)
        fence = re.match(r"`+", shown).group(0)
        assert shown.endswith(fence) and json.dumps(token) in shown
        assert "`" * len(fence) not in shown[len(fence) : -len(fence)]
    assert lesson_markdown.cell(lesson_markdown.quoted("a|b")).count("\\|") == 1


def test_the_page_gets_the_same_markdown_with_its_guesses_and_the_demos_it_ran(client, tiny):
    assert client.post("/api/training", json={"steps": 2}).status_code == 200
    answer = client.post("/api/lesson/markdown", json={"guesses": {"confidence": 55}})
    assert answer.status_code == 200
    text = answer.json()["markdown"]
    training = client.get("/api/training").json()["result"]
    assert f"after {len(training['losses'])} training steps" in text and "The learner guessed: 55%." in text
    assert "Not measured in this copy: run the staircase demo" in text
    lesson = client.get("/api/lesson").json()
    assert f"(http://testserver{lesson['try_it']['items'][0]['href']})" in text


def test_the_page_may_send_only_a_few_guesses(client):
    many = {f"s{i}": 1 for i in range(51)}
    assert client.post("/api/lesson/markdown", json={"guesses": many}).status_code == 422
    assert client.post("/api/lesson/markdown", json={"guesses": {"x" * 41: 1}}).status_code == 422


def test_tokenloop_lesson_markdown_prints_the_lesson_with_step_3_measured(capsys, tiny, tiny_model_dir):
    code, out, err = cli(capsys, "lesson", "--markdown", "--model", str(tiny_model_dir))
    assert code == 0, err
    lesson = content.load("day01")
    top = next_token(tiny, prompt_ids(tiny, lesson["prompt"]), 8).top
    assert out.startswith(f"# {lesson['title']}") and f"The top token got {lesson_markdown.percent(top[0].prob)}" in out


def test_a_wrong_lesson_name_is_one_line_before_any_model_loads(capsys):
    err = one_line_error(capsys, ["lesson", "--markdown", "--lesson", "day99"], 2)
    assert "no lesson called 'day99'" in err


# --- the try-it links ---------------------------------------------------------------------------
def test_every_try_it_item_links_the_lab_with_all_its_settings():
    lesson = content.load("day01")
    items = lesson["try_it"]["items"]
    assert 5 <= len(items) <= 7
    for item in items:
        assert item["href"].startswith("/lab?") and f"try={item['id']}" in item["href"]
        assert "prompt=" in item["href"] and "cache=" in item["href"] and "max_new=" in item["href"]


@pytest.mark.parametrize(
    ("lab", "words"),
    [
        ({"prompt": "x", "temperature": 9}, "temperature"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "colour": 1}, "colour"),
    ],
)
def test_a_try_it_item_with_a_bad_setting_is_refused_when_the_lesson_loads(lab, words):
    with pytest.raises(UsageError, match=f"try-it bad: {words}"):
        content.lab_href("day01", {"id": "bad", "lab": lab})


def test_the_lab_runs_without_a_cache_when_asked(client):
    state = client.post("/api/lab/start", json={"prompt": "The scheduler places pods", "cache": False}).json()
    assert state["cache"] is False
    steps = [client.post("/api/lab/step", json={}).json() for _ in range(2)]
    n = len(state["prompt_tokens"])
    assert [s["tokens_in"] for s in steps] == [n, n + 1] and not any(s["cache"] for s in steps)
    state = client.post("/api/lab/start", json={"prompt": "The scheduler places pods"}).json()
    steps = [client.post("/api/lab/step", json={}).json() for _ in range(2)]
    assert state["cache"] is True and [s["tokens_in"] for s in steps] == [n, 1]


def test_new_page_scripts_load_nothing_from_the_network_and_write_no_html(client):
    for name in ("map.js", "tryit.js", "export.js", "readnext.js", "lablink.js", "map.css"):
        text = client.get(f"/static/{name}").text
        assert not re.search(r"(src|href|url\()\s*=?\s*[\"']?https?://", text), name
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, name


# --- the lesson on screen, every kind's guess, Lesson 7's live numbers --------------------------
def step_of(lesson: dict, step_id: str) -> dict:
    return next(s for s in lesson["steps"] if s["id"] == step_id)


def test_the_cli_copy_of_lesson_7_measures_the_tensor_checks_on_the_embedded_model(smol):
    lesson = content.load("day07")
    live = lesson_markdown.measure(smol, lesson)
    assert set(live["results"]) == {"kv_causal", "kv_bytes"}  # the cheap ones; no timing, no server
    causal, held = live["results"]["kv_causal"], live["results"]["kv_bytes"]["measured"]
    text = lesson_markdown.render(lesson, live)
    assert text.startswith(f"# {lesson['title']}\n")
    assert f"all {causal['layers']} layers: max |ΔK| 0, |ΔV| 0" in text  # exactly: the causal mask
    assert f"{held['bytes_per_token']:,.0f} B per token" in text and held["formula"] in text
    assert text.count(f"model {smol.model} · hardware: cpu") == 2 and "honesty: exact" in text
    assert "Not measured in this copy: run the context_cost demo" in text  # timing is the page's
    assert "← this lesson" in text and lesson["read_next"]["also"][0]["url"] in text


def test_the_page_copies_the_lesson_it_shows_with_every_live_step_it_revealed(client, tiny):
    got = {
        "kv_causal": client.post("/api/live/kv_causal", json={}).json(),
        "kv_staircase": client.post("/api/live/staircase", json={"max_len": 16, "points": 2, "repeats": 1}).json(),
        "context_cost": client.post("/api/live/context_cost", json={}).json(),
        "kv_bytes": client.post("/api/live/kv_bytes").json(),
        "kv_capacity": client.post("/api/live/kv_capacity").json(),
    }
    guesses = {"causal": 0, "staircase": ["knee", "flat"], "bytes_per_token": 40000, "capacity": 2.5}
    answer = client.post("/api/lesson/markdown", json={"lesson": "day07", "guesses": guesses})
    assert answer.status_code == 200, answer.text
    text, lesson = answer.json()["markdown"], content.load("day07")
    assert text.startswith(f"# {lesson['title']}\n") and "Not measured" not in text
    curves = step_of(lesson, "staircase")["curves"]
    assert f"{curves[0]['label']}: knee (wrong, it is staircase); {curves[1]['label']}: flat (right)" in text
    line = {**guesses, "staircase": ["line", "flat"]}  # Lesson 1's staircase, drawn per step, is a line: both right
    again = client.post("/api/lesson/markdown", json={"lesson": "day07", "guesses": line}).json()["markdown"]
    assert f"{curves[0]['label']}: line (right)" in again
    assert "The learner estimated: 40,000 bytes." in text and "The learner estimated: 2.5 conversations." in text
    c = got["kv_causal"]
    assert f"max |ΔK| {lesson_markdown.number(c['max_abs_diff_k'])}" in text and f"({c['ms']:.0f} ms" in text
    series = got["kv_staircase"]["result"]["series"]
    assert all(f"| {p['length']} | {p['uncached_ms']:.1f} | {p['cached_ms']:.1f} |" in text for p in series)
    cost = got["context_cost"]
    assert f"{cost['points'][-1]['ms']:.2f} ms with {cost['longest']}: {cost['ratio']:.2f}×" in text
    assert f"{got['kv_bytes']['measured']['bytes_per_token']:,.0f} B per token" in text
    assert f"would hold {got['kv_capacity']['in_process']['conversations']:.1f} of them" in text
    assert text.count("honesty: exact") == 3 and "honesty: shape" in text and "honesty: cause differs" in text
    assert step_of(lesson, "long_context")["cpu_note"].split(";")[0] in text  # the CPU caveat, as on the page


def test_lesson_1s_copy_carries_the_500_token_answer_it_revealed(client):
    r = client.post("/api/live/answer_time", json={}).json()
    text = client.post("/api/lesson/markdown", json={"guesses": {"answer_time": 30}}).json()["markdown"]
    assert f"= {r['total_s']:.1f} s, of which the prefill is {lesson_markdown.percent(r['prefill_share'])}" in text
    assert "The learner estimated: 30 s." in text and "honesty: shape" in text


def test_the_fill_summary_is_written_under_the_servers_capacity():
    from tokenloop.backends.server.metrics import parse
    from tokenloop.cost import kv_capacity, kv_fill

    # The labels' shape as vLLM 0.32 writes them; the fill's summary from its samples.
    labels = 'vllm:cache_config_info{block_size="16",kv_cache_memory_bytes="1048576",num_gpu_blocks="100"} 1.0\n'
    allocation = kv_capacity.server_allocation(parse(labels), 400)
    samples = [
        {"t_s": 0.5, "preemptions": 0, "kv_usage": 0.6, "waiting": 0, "tokens": 10},
        {"t_s": 1.0, "preemptions": 2, "kv_usage": 0.97, "waiting": 3, "tokens": 40},
    ]
    live = {
        "results": {
            "kv_capacity": {"allocation": allocation},
            "kv_fill": kv_fill.summary(samples, "preempted", [], True),
        }
    }
    text = "\n".join(lesson_markdown.WRITERS["kv_capacity"](live["results"]["kv_capacity"], live))
    assert "1,600 tokens; ÷ 400 tokens per full conversation = 4.00 conversations" in text
    assert "stopped (preempted) after 1.0 s, 2 preemptions, KV cache usage peaked at 97.0%, at most 3" in text


def test_an_unknown_lesson_or_a_guess_no_step_keeps_is_refused(client):
    answer = client.post("/api/lesson/markdown", json={"lesson": "day99"})
    assert answer.status_code == 400 and "no lesson called 'day99'" in answer.json()["error"]
    assert "\n" not in answer.json()["error"]
    for guess in (["zigzag"], ["flat"] * 9, "flat", -1, 1e13):
        assert client.post("/api/lesson/markdown", json={"guesses": {"s": guess}}).status_code == 422, guess


def test_tokenloop_lesson_markdown_for_lesson_7_has_its_live_numbers(capsys, tiny_model_dir):
    code, out, err = cli(capsys, "lesson", "--markdown", "--lesson", "day07", "--model", str(tiny_model_dir))
    assert code == 0, err
    assert out.startswith(f"# {content.load('day07')['title']}") and "max |ΔK| 0, |ΔV| 0" in out


def test_tokenloop_lesson_markdown_for_lesson_6_has_its_live_numbers(capsys, tiny_model_dir, tiny):
    """Steps 1-4 measured for the copy on the model in this process, each the number draws/embedded.py
    gives here; step 5 (a batch of greedy runs) is left to the page and says so."""
    from tokenloop.draws import embedded as draws
    from tokenloop.lessons.markdown_live import percent

    code, out, err = cli(capsys, "lesson", "--markdown", "--lesson", "day06", "--model", str(tiny_model_dir))
    assert code == 0, err
    prompt = content.load("day06")["prompt"]
    same, hot = draws.same_forward(tiny, prompt), draws.temperature_prob(tiny, prompt)
    out_top, kept = draws.outside_top(tiny, prompt), draws.top_p_kept(tiny, prompt)
    for part in (
        f"the largest difference over all {same['vocab_size']:,} logits was 0",
        ", ".join(f"{percent(p['prob'])} at T {p['temperature']:g}" for p in hot["points"]),
        f"{out_top['outside']} of 50 draws at T 1 (seeds 0–49)",
        f"top_p 0.5 kept {kept['eligible']} of {kept['vocab_size']:,} tokens",
        "Not measured in this copy: run the sampling_batch demo",
    ):
        assert part in out, (part, out)


@pytest.mark.server
def test_lesson_6_markdown_with_url_measures_its_one_request_steps_on_the_server(capsys, vllm_processed_url):
    """With --url, steps 1, 2 and 4 of the copy come from the server (processed logprobs here), each
    number against the test's own /v1/completions calls; step 3's 50 draws are left to the page."""
    from support.vllm_direct import completion

    code, out, err = cli(capsys, "lesson", "--markdown", "--lesson", "day06", "--url", vllm_processed_url)
    assert code == 0, err
    model = httpx.get(f"{vllm_processed_url}/models", timeout=30).json()["data"][0]["id"]
    prompt = content.load("day06")["prompt"]
    at = {t: completion(vllm_processed_url, model, prompt, temperature=t, seed=0, logprobs=5) for t in (0.5, 1.0, 2.0)}
    favourite = max(at[1.0]["top"], key=at[1.0]["top"].get)
    said = re.search(r"the server's processed logprobs gave `[^`]*` (.*? at T 2)", out)
    assert said, out
    shown = [float(p) for p in re.findall(r"([\d.]+)% at T", said.group(1))]
    direct = [100 * math.exp(at[t]["top"][favourite]) for t in (0.5, 1.0, 2.0)]
    assert shown == pytest.approx(direct, abs=0.15), (shown, direct)
    assert "over the top 5 logprobs the server returned" in out and "so top_p 0.5 kept at least" in out
    root = vllm_processed_url.removesuffix("/v1")
    assert out.count(f"Computed on the vLLM server at {root}.") == 3, out  # steps 1, 2 and 4
    assert "Not measured in this copy: run the sampling_outside_top demo" in out
