"""Lesson 7 (and Lesson 1's 500-token step) in a real browser: every step guessed and revealed on
the embedded model, then on a real vLLM (CPU build) with a small KV cache, where the page reads the
server's allocation and a consented fill drives it to preempt. Every reveal must name its engine,
version, model and honesty tag."""

from __future__ import annotations

import re

import pytest
from support.browser import MODEL_WORK, measuring_requests, open_page, reveal, shot, shown_source
from support.launcher import app_serving

from tokenloop.lessons import content
from tokenloop.web import create_app

SMALL = {
    "steps": 2,
    "max_len": 16,
    "points": 2,
    "repeats": 2,
    "teacher_max_new": 6,
    "context_len": 64,
    "answer_steps": 4,
}
FILL_CAP_S = 90


@pytest.fixture(scope="module")
def embedded_app(smol):
    with app_serving(create_app(smol, demo=SMALL)) as url:
        yield url


@pytest.fixture(scope="module")
def vllm_app(smol, vllm_small_cache_url):
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(vllm_small_cache_url, log=lambda message: None)
    app = create_app(server, compare=smol, server_url=server.root, demo=SMALL)
    with app_serving(app) as url:
        yield url, server


def drawn(box, selector: str, count: int):
    """Wait for a reveal's chart; on a timeout, fail with what the step shows (its error, if any)."""
    from playwright.sync_api import expect

    try:
        expect(box.locator(selector)).to_have_count(count, timeout=MODEL_WORK)
    except AssertionError:
        raise AssertionError(f"{selector} not drawn; the step shows: {box.inner_text()[-600:]!r}") from None


def expect_source(box, engine: str, model: str, tag: str):
    """The line under the chart: engine, version, model, the honesty tag."""
    return shown_source(box, engine, model, tag=tag)


def guess_estimate(box, value: float):
    box.locator(".estimate-number").fill(str(value))


def all_five_steps(tab, url: str, engine: str, model: str) -> dict:
    """Guess and reveal Lesson 7's five steps; returns the boxes by step id."""
    from playwright.sync_api import expect

    lesson = content.load("day07")
    open_page(tab, f"{url}/?lesson=day07")
    expect(tab.locator("#title")).to_have_text(lesson["title"])
    expect(tab.locator("#lesson-switch")).to_have_value("day07")
    expect(tab.locator("#teacher-ask")).to_be_visible()
    expect(tab.locator("#teacher-training")).to_have_count(0)  # no training step in this lesson: no such button
    boxes = {}

    # 1: the earlier keys and values, with and without one more token: exactly equal.
    box = tab.locator("#step-causal")
    expect(box.locator(".reveal")).to_be_disabled()
    box.locator("input[value='0']").check()
    box = boxes["causal"] = reveal(tab, "causal")
    expect(box.locator(".live")).to_contain_text("largest difference 0 (K) and 0 (V)", timeout=MODEL_WORK)
    expect(box.locator(".chart-causal .zero-badge")).to_contain_text("no change: 0 exactly")  # not a 1e-9 scale
    expect_source(box, "tokenloop embedded", model, "exact")  # in process, also beside a server

    # 2: two curves to pick, then the measured staircase.
    box = tab.locator("#step-staircase")
    box.locator("input[name='curve-staircase-0'][value='line']").check()
    expect(box.locator(".reveal")).to_be_disabled()  # both curves first
    box.locator("input[name='curve-staircase-1'][value='staircase']").check()
    box = boxes["staircase"] = reveal(tab, "staircase")
    drawn(box, ".chart-staircase svg path.series", 2)
    expect(box.locator(".verdict.wrong, .verdict.unclear")).to_have_count(1, timeout=MODEL_WORK)
    if box.locator(".verdict.wrong").count():  # graded only when the growth beats the repeats' spread
        expect(box.locator(".verdict.wrong")).to_contain_text("you picked staircase; it is flat")
        expect(box.locator(".verdict")).to_contain_text(
            "you picked line; it is staircase (or line) ✓"
        )  # Lesson 1's word, or line
    else:
        expect(box.locator(".verdict.unclear")).to_contain_text("Can't tell on this machine now")
    expect_source(box, engine, model, "shape")  # on the server itself when there is one
    expect(box.locator(".honesty-note")).to_contain_text(lesson["honesty"]["shape"].split(",")[0])

    # 3: time per cached token at several context lengths, and the caveat that goes with it.
    tab.locator("#step-long_context input[value='1']").check()
    box = boxes["long_context"] = reveal(tab, "long_context")
    drawn(
        box,
        ".chart-context svg circle",
        len({max(8, round(SMALL["context_len"] * f)) for f in (1 / 32, 1 / 8, 1 / 4, 1 / 2, 1)}),
    )
    expect_source(box, engine, model, "cause differs")
    cpu_note = next(s for s in lesson["steps"] if s["id"] == "long_context")["cpu_note"]
    expect(box.locator(".honesty-note")).to_contain_text(cpu_note.split(";")[0])

    # 4 and 5: estimates on log sliders, scored by ratio.
    guess_estimate(tab.locator("#step-bytes_per_token"), 40000)
    box = boxes["bytes_per_token"] = reveal(tab, "bytes_per_token")
    expect(box.locator(".verdict")).to_contain_text("Measured:", timeout=MODEL_WORK)
    expect(box.locator(".verdict.right")).to_contain_text("within 2×")  # 40,000 against ~46,000
    expect_source(box, engine, model, "exact")

    guess_estimate(tab.locator("#step-capacity"), 500)
    box = boxes["capacity"] = reveal(tab, "capacity")
    if engine == "vLLM":  # the server's own allocation: measured, scored
        expect(box.locator(".verdict")).to_contain_text("Measured:", timeout=MODEL_WORK)
        expect_source(box, engine, model, "exact")
    else:  # no allocation in process: a what-if on free memory, never scored
        expect(box.locator(".verdict.unscored")).to_contain_text("What-if, not measured:", timeout=MODEL_WORK)
        expect(box.locator(".source")).to_contain_text("what-if")
    return boxes


def answer_time_step(tab, url: str, how: str):
    """Lesson 1's step 6: guess a 500-token answer's time, then the live projection."""
    from playwright.sync_api import expect

    open_page(tab, url)
    guess_estimate(tab.locator("#step-answer_time"), 30)
    box = reveal(tab, "answer_time")
    expect(box.locator(".chart-answer .bar-row")).to_have_count(2, timeout=MODEL_WORK)
    live = box.locator(".live").first
    expect(live).to_contain_text(how)
    text = live.inner_text()
    share = float(re.search(r"the prefill is ([\d.]+)%", text).group(1))
    assert 0 < share < 50, text  # a sliver: 499 decode steps against one prefill
    return box


def test_lesson7_on_the_embedded_model(page, embedded_app, smol):  # noqa: F811  (page: a fixture)
    from playwright.sync_api import expect

    boxes = all_five_steps(page, embedded_app, "tokenloop embedded", smol.model)
    measured = page.request.post(f"{embedded_app}/api/live/kv_bytes?lesson=day07", timeout=MODEL_WORK).json()[
        "measured"
    ]
    assert measured["bytes_per_token"] == measured["predicted_bytes_per_token"]  # the tensors hold what the config says
    expect(boxes["bytes_per_token"].locator(".verdict")).to_contain_text(f"{int(measured['bytes_per_token']):,} B")
    expect(boxes["capacity"].locator(".live")).to_contain_text("free memory")
    shot(page, "lesson7-embedded.png")
    answer_time_step(page, embedded_app, "the cached loop")


def test_lesson7_on_a_real_vllm_with_a_small_cache(page, vllm_app, smol):  # noqa: F811
    from playwright.sync_api import expect

    url, server = vllm_app
    boxes = all_five_steps(page, url, "vLLM", server.model)

    # Step 4: the server's bytes per token, within one block's rounding of the config's prediction.
    data = page.request.post(f"{url}/api/live/kv_bytes?lesson=day07", timeout=30_000).json()
    a, predicted = data["allocation"], data["predicted"]["bytes_per_token"]["float32"]
    assert a["tokens"] == a["blocks"] * a["block_size"]
    assert predicted <= a["bytes_per_token"] <= a["memory_bytes"] / (a["memory_bytes"] / predicted - a["block_size"])
    expect(boxes["bytes_per_token"].locator(".live")).to_contain_text(f"{int(a['tokens']):,} tokens")

    # Step 5: the server's own figure, then the planned fill, until the first preemption.
    box = boxes["capacity"]
    expect(box.locator(".verdict")).to_contain_text(f"{a['conversations']:.3g}")
    plan = box.locator(".fill-plan")
    expect(plan).to_contain_text(re.compile(r"sends \d+ requests of ~[\d,]+ tokens"))
    expect(box.locator(".fill-remote")).to_have_count(0)  # on this machine: the click is the consent
    box.locator(".fill-start").click()
    summary = box.locator(".fill-summary")
    expect(summary).to_contain_text("Stopped", timeout=(FILL_CAP_S + 60) * 1000)
    assert int(float(summary.get_attribute("data-preemptions"))) >= 1, summary.inner_text()
    seconds = float(re.search(r"after ([\d.]+) s", summary.inner_text()).group(1))
    assert seconds <= FILL_CAP_S and "/health after: OK" in summary.inner_text()
    expect(box.locator(".chart-fill svg path.series")).to_have_count(1)  # usage, 0 to 1, on its own axis
    expect(box.locator(".chart-fill-counts svg path.series")).to_have_count(3)  # running, waiting, preemptions
    expect_source(box.locator(".fill"), "vLLM", server.model, "exact")
    shot(page, "lesson7-vllm.png")

    # A revisit with --url draws what was measured and sends the learner's server nothing new.
    kept = boxes["capacity"].locator(".verdict").text_content()
    sent = measuring_requests(page)
    open_page(page, f"{url}/?lesson=day07")
    expect(page.locator("#step-capacity .verdict")).to_have_text(kept, timeout=MODEL_WORK)
    expect(page.locator("#step-staircase .chart-staircase svg path.series")).to_have_count(2)
    assert sent == [], sent

    answer_time_step(page, url, "one streamed completion")


def test_lesson7_has_lesson_1s_shared_parts_and_copies_itself_with_its_live_numbers(page, embedded_app):  # noqa: F811
    """On /?lesson=day07: the course map (this lesson's box marked), the try-it list, read next and
    the copy button; the copy is Lesson 7's, with the key and value check the page just revealed."""
    from playwright.sync_api import expect

    lesson = content.load("day07")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=embedded_app)
    open_page(page, f"{embedded_app}/?lesson=day07")
    expect(page.locator("#course-map .map-part-here")).to_contain_text("append; keep K,V")
    expect(page.locator("#course-map .map-here")).to_have_text(lesson["course_map"]["you_are_here"])
    expect(page.locator("#try-it .try-link")).to_have_count(len(lesson["try_it"]["items"]))
    expect(page.locator("#read-next .read-also a")).to_have_count(len(lesson["read_next"]["also"]))
    shot(page.locator("#course-map"), "lesson7-course-map.png")
    page.locator("#step-causal input[value='1']").check()
    box = reveal(page, "causal")
    expect(box.locator(".live")).to_contain_text("largest difference 0 (K) and 0 (V)", timeout=MODEL_WORK)
    page.locator("#copy-for-ai").click()
    markdown = page.locator("#lesson-markdown")
    expect(markdown).to_contain_text(f"## {lesson['read_next']['title']}", timeout=MODEL_WORK)
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == markdown.text_content() and copied.startswith(f"# {lesson['title']}\n")
    assert "max |ΔK| 0, |ΔV| 0" in copied and "(right)" in copied  # the page's reveal and guess
    assert "Not measured in this copy: run the kv_bytes" not in copied  # cheap: measured for the copy
