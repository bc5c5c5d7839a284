"""The lesson and the lab readable by a newcomer, in a real browser on the real embedded model (issue
24): no sideways scroll on a 390 px phone; recall cards between the steps that open on a click or
a key, never on hover or focus; the ten-line loop beside the steps and in the lab; "See it raw" with
the /metrics call and each logprob turned into the bar's %; chart ticks without scientific notation
and an all-zero chart as a badge (charts.js); a try-it item of Lesson 7 keeping its note in the lab
and the lab's Lesson link going back to Lesson 7; the lab's stop reason in words.
Modules (src/tokenloop/web/static/): recall.js, loopcode.js, raw.js, charts.js, lab.js, lablink.js."""

from __future__ import annotations

import math

import httpx
import pytest
from support.browser import MODEL_WORK, open_page, shot

pytestmark = pytest.mark.model
PHONE = {"width": 390, "height": 844}


def fits(page) -> bool:
    """No horizontal scroll: the document is no wider than the window."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert not errors, errors
    context.close()


def test_no_sideways_scroll_at_390px_on_both_lessons_and_the_lab(phone, served):
    from playwright.sync_api import expect

    for lesson in ("day01", "day07"):
        open_page(phone, f"{served}/?lesson={lesson}")
        first = phone.locator(".step").first
        first.locator("input[type=radio]").first.check()
        first.locator(".reveal").click()
        assert fits(phone), (lesson, phone.evaluate("document.documentElement.scrollWidth"))
        shot(phone, f"phone-{lesson}.png")
    items = {i["id"]: i for i in httpx.get(f"{served}/api/lesson").json()["try_it"]["items"]}
    open_page(phone, f"{served}{items['chat']['href']}")
    expect(phone.locator(".touch-only").first).to_be_visible()  # "tap a token", not "hover a token"
    expect(phone.locator(".hover-only").first).to_be_hidden()
    phone.locator("#max-new").fill("3")
    phone.locator("#run").click()
    expect(phone.locator("#steps-table tbody tr")).to_have_count(3, timeout=MODEL_WORK)
    assert fits(phone), phone.evaluate("document.documentElement.scrollWidth")
    shot(phone, "phone-lab.png")


def test_recall_cards_sit_between_the_steps_and_open_on_a_click_or_a_key_only(page, served):
    from playwright.sync_api import expect

    lesson = httpx.get(f"{served}/api/lesson").json()
    open_page(page, served)
    cards = page.locator(".recall-card")
    expect(cards).to_have_count(len(lesson["recall"]))
    for i, card in enumerate(lesson["recall"]):  # each right after the step it names (or its asides)
        follows = cards.nth(i).evaluate(
            "n => { let p = n.previousElementSibling; while (p.classList.contains('aside')) p = p.previousElementSibling; return p.id; }"
        )
        assert follows == f"step-{card['after']}"
    first = cards.first
    answer = first.locator(".recall-answer")
    first.hover()
    first.locator(".recall-show").focus()
    expect(answer).to_be_hidden()  # hovering or focusing gives nothing away
    page.keyboard.press("Enter")
    expect(answer).to_be_visible()
    expect(answer).to_have_text(lesson["recall"][0]["answer"].strip())
    first.locator(".recall-show").click()
    expect(answer).to_be_hidden()
    cards.nth(1).locator(".recall-show").click()
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator(".recall-card").nth(1).locator(".recall-answer")).to_be_visible()  # kept open


def test_the_ten_line_loop_sits_beside_step_1_and_in_the_lab(page, served):
    from playwright.sync_api import expect

    code = httpx.get(f"{served}/api/lesson").json()["loop_code"]
    assert len(code["code"].splitlines()) == 10
    open_page(page, served)
    box = page.locator("#step-loop + .loop-code")
    expect(box.locator("pre")).to_have_text(code["code"])
    open_page(page, f"{served}/lab")
    expect(page.locator("#loop-code pre")).to_have_text(code["code"])


def test_see_it_raw_turns_each_logprob_into_the_bars_percent_and_lesson_7_shows_metrics(page, served):
    from playwright.sync_api import expect

    lesson = httpx.get(f"{served}/api/lesson").json()
    open_page(page, served)
    expect(page.locator("#metrics-curl")).to_have_count(0)  # Lesson 1 reads no metrics
    page.locator("button.run-raw").click()
    rows = page.locator(".logprob-table tbody tr")
    expect(rows).to_have_count(8, timeout=MODEL_WORK)
    live = httpx.post(f"{served}/api/next", json={"prompt": lesson["prompt"], "top_k": 8}, timeout=60).json()
    top = live["top"][0]
    assert rows.first.locator("td").nth(2).text_content() == (
        f"exp({top['logprob']:.2f}) = {100 * math.exp(top['logprob']):.1f}%"
    )
    assert f"{100 * top['prob']:.1f}%" in rows.first.text_content()  # the bar's own number

    seven = httpx.get(f"{served}/api/lesson?name=day07").json()
    open_page(page, f"{served}/?lesson=day07")
    metrics = page.locator("#metrics-curl")
    expect(metrics).to_contain_text("/metrics | grep -E")
    for name in seven["raw"]["metrics"]:
        expect(metrics).to_contain_text(name.removeprefix("vllm:"))
    expect(page.locator("#curl")).to_contain_text("/v1/completions")


def test_ticks_are_plain_numbers_in_units_and_an_all_zero_chart_is_a_badge(page, served):
    open_page(page, served)
    got = page.evaluate(
        """async () => {
          const m = await import('/static/charts.js');
          const box = document.createElement('div');
          document.body.append(box);
          m.lineChart(box, [{name: 'a', points: [[1, 0], [2, 9480]]}], {xLabel: 'tokens', yLabel: 'ms per step'});
          const ticks = [...box.querySelectorAll('text.tick.end')].map(t => t.textContent);
          const zero = document.createElement('div');
          m.lineChart(zero, [{name: 'k', points: [[1, 0], [2, 0]]}], {yLabel: 'largest difference'});
          const bytes = [m.tick(46080, 'bytes', 46080), m.tick(19900, 'ms', 19900), m.tick(1.2e-9, '', 2.4e-9)];
          return {ticks, zero: zero.textContent, svg: zero.querySelectorAll('svg').length, bytes};
        }"""
    )
    assert got["ticks"] == ["0 ms", "4,740 ms", "9,480 ms"]
    assert got["zero"].startswith("no change: 0 exactly") and got["svg"] == 0
    assert got["bytes"] == ["45 KiB", "19.9 s", "0.0000000012"]
    assert not any("e+" in t or "e-" in t for t in got["ticks"] + got["bytes"])


def test_a_lesson_7_try_it_item_keeps_its_note_in_the_lab_and_leads_back_to_lesson_7(page, served):
    from playwright.sync_api import expect

    seven = httpx.get(f"{served}/api/lesson?name=day07").json()
    item = next(i for i in seven["try_it"]["items"] if i["id"] == "long-prefill")
    open_page(page, f"{served}/?lesson=day07")
    page.locator(f".try-item[data-id='{item['id']}'] a.try-link").click()
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#link-note")).to_contain_text(f"Look for: {item['look_for'].strip()[:60]}")
    expect(page.locator("#link-note")).to_contain_text("Lesson 7")
    expect(page.locator("#lesson-link")).to_have_attribute("href", "/?lesson=day07")
    page.reload()  # the address lost its query; the way back is kept
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#lesson-link")).to_have_attribute("href", "/?lesson=day07")
    page.locator("#max-new").fill("2")
    page.locator("#run").click()
    expect(page.locator("#summary")).to_contain_text(
        "Stopped: max new tokens reached, after 2 tokens", timeout=MODEL_WORK
    )
    assert "(max_new)" not in page.locator("#summary").text_content()
    page.locator("#run").click()  # a second run: put beside the first
    expect(page.locator("#previous-run")).to_contain_text(
        "The run before this one (with the KV cache, 2 tokens)", timeout=MODEL_WORK
    )
    page.locator("#lesson-link").click()
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#title")).to_have_text(seven["title"])
