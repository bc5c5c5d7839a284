"""The teacher that acts and cites, and the page connected to a real server (--url), in a real
browser: headless Debian chromium against the app on 127.0.0.1 (fixtures of support/browser.py).
The 135M model is small whether it runs here or behind --url: its caution shows in both, and its
answer comes only on a click; a question outside the lesson gets the lesson's map; no "null"."""

from __future__ import annotations

import httpx
import pytest
from support.browser import MODEL_WORK, SMALL, open_page, shot
from support.launcher import app_serving

from tokenloop.web import create_app


def test_the_teacher_cites_the_lesson_then_runs_what_is_asked(page, served):  # noqa: F811
    from playwright.sync_api import expect

    lesson = httpx.get(f"{served}/api/lesson").json()
    training_step = next(s for s in lesson["steps"] if s["id"] == "training")
    open_page(page, served)
    small = page.locator("#teacher-small")  # said plainly, with the model's size from its config
    expect(small).to_contain_text("SmolLM2-135M-Instruct, with 135 million parameters")
    expect(small).to_contain_text("7 billion parameters or more")

    # A training question: the lesson's own training passage is cited; the small model answers on a click.
    page.locator("#teacher-question").fill("How does training change the weights?")
    page.locator("#teacher-ask").click()
    cited = page.locator(".teacher-turn").nth(0).locator(".cited[data-step='training']")
    expect(cited).to_contain_text(training_step["explain"].strip()[:60])
    expect(cited.locator("cite")).to_have_text(training_step["title"])
    expect(page.locator(".teacher-turn").nth(0).locator(".teacher-answer")).to_have_count(0)  # not by itself
    page.locator(".teacher-turn").nth(0).locator(".teacher-ask-model").click()
    expect(page.locator(".teacher-turn").nth(0).locator(".teacher-ask-model")).to_have_count(0)
    expect(page.locator("#teacher-ask")).to_be_enabled(timeout=MODEL_WORK)  # the answer's stream ended
    answer = page.locator(".teacher-turn").nth(0).locator(".teacher-answer")
    assert answer.text_content().strip() and answer.get_attribute("data-model") == "SmolLM2-135M-Instruct"
    expect(page.locator(".teacher-turn").nth(0).locator(".teacher-says")).to_contain_text("SmolLM2-135M-Instruct")

    # "What comes after <text>?": the live next-token bars for that text, as /api/next gives them.
    text = "The capital of France is"
    page.locator("#teacher-question").fill(f"What comes after {text}?")
    page.locator("#teacher-ask").click()
    rows = page.locator(".teacher-turn").nth(1).locator(".teacher-bars .bar-row")
    expect(rows).to_have_count(8, timeout=MODEL_WORK)
    live = httpx.post(f"{served}/api/next", json={"prompt": text, "top_k": 8}, timeout=MODEL_WORK / 1000).json()
    assert [int(i) for i in rows.evaluate_all("rows => rows.map(r => r.dataset.id)")] == [c["id"] for c in live["top"]]
    expect(page.locator("#teacher-ask")).to_be_enabled(timeout=MODEL_WORK)

    # Outside the lesson: our words and the lesson's map (links to its steps), no model at all.
    page.locator("#teacher-question").fill("Give me a pasta recipe")
    page.locator("#teacher-ask").click()
    away = page.locator(".teacher-turn").nth(2)
    expect(away.locator(".teacher-outside")).to_contain_text(lesson["teacher"]["outside"].strip())
    expect(away.locator(".teacher-map a")).to_have_count(len(lesson["steps"]))
    assert away.locator(".teacher-map a").nth(4).get_attribute("href") == "#step-cost"
    expect(away.locator(".cited, .teacher-answer, .teacher-ask-model")).to_have_count(0)
    page.locator("#teacher-question").fill("What does the causal mask do?")  # Lesson 7's, not this one's
    page.locator("#teacher-ask").click()
    expect(page.locator(".teacher-turn").nth(3).locator(".teacher-elsewhere a")).to_have_attribute(
        "href", "/?lesson=day07"
    )

    # "Show me training", as a button: the training demo runs in the panel.
    page.locator("#teacher-training").click()
    expect(page.locator(".teacher-training")).to_contain_text("One training step took", timeout=MODEL_WORK)
    expect(page.locator(".teacher-training svg.chart path.series")).to_have_count(1)
    assert "null" not in page.locator("#teacher").inner_text()
    shot(page.locator("#teacher"), "lesson-teacher.png")


@pytest.fixture(scope="module")
def connected(vllm_url, smol):
    """The lesson with --url on the test suite's real vLLM, the embedded model beside it."""
    from tokenloop.backends.server import ServerBackend

    backend = ServerBackend(vllm_url, log=lambda message: None)
    with app_serving(create_app(backend, compare=smol, server_url=backend.root, demo=SMALL)) as url:
        yield url, backend
    backend.close()


def test_with_url_the_page_shows_the_server_and_measures_its_own_staircase(page, connected):  # noqa: F811
    from playwright.sync_api import expect

    url, backend = connected
    open_page(page, url)
    # The server runs the same 135M model: small, by its size, with --url too; and no "null" in the panel.
    expect(page.locator("#teacher-small")).to_contain_text("135 million parameters")
    assert "null" not in page.locator("#teacher").inner_text()
    facts = page.locator("#cluster-facts")
    expect(facts).to_be_visible(timeout=MODEL_WORK)
    expect(facts.locator("tr[data-fact='Engine'] td")).to_have_text(f"vLLM {backend.caps.version}")
    expect(facts.locator("tr[data-fact='Model'] td")).to_have_text(backend.model)
    expect(facts.locator("tr[data-fact='Context'] td")).to_have_text("2,048 tokens")
    expect(facts.locator("tr[data-fact='Logprobs per token'] td")).to_have_text("at most 20")  # vLLM's default cap
    expect(facts.locator("tr[data-fact='Its logprobs are'] td")).to_contain_text("raw")
    expect(facts.locator("tr[data-fact='Prefix caching'] td")).to_contain_text("on")

    step = page.locator("#step-cost")
    step.locator("input[value='1']").check()
    step.locator(".reveal").click()
    step.locator("button.run-server-staircase").click()
    demo = step.locator(".demo-server-staircase")
    expect(demo.locator("svg.chart path.series")).to_have_count(2, timeout=MODEL_WORK)  # without and with the cache
    expect(demo.locator(".chart-title")).to_contain_text(
        f"Measured on {backend.model} by vLLM {backend.caps.version} at {backend.root}"
    )
    result = step.page.request.get(f"{url}/api/server-staircase").json()["result"]  # this browser's session
    fresh = [p["fresh_ms"] for p in result["series"]]
    assert fresh[-1] > fresh[0] and result["engine"] == f"vLLM {backend.caps.version}"
    sends = demo.locator("table.hits tr[data-send]")
    expect(sends).to_have_count(3)
    expect(sends.nth(0).locator("td").nth(2)).to_have_text(f"0 of {result['max_len']}")  # a prompt never seen
    assert result["hits"][1]["hit_tokens"] > 0 and result["hits"][2]["hit_tokens"] == 0  # repeated; then salted

    # The embedded model's staircase beside it says that it ran in this process, not on the server.
    step.locator("button.run-staircase").click()
    expect(step.locator(".demo-staircase .chart-title")).to_contain_text("in this process", timeout=MODEL_WORK)
    expect(step.locator(".demo-staircase .chart-title")).to_contain_text("transformers")
    shot(page.locator("#cluster"), "lesson-cluster.png")
    shot(step, "lesson-server-staircase.png")
