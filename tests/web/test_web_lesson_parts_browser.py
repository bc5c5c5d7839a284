"""The lesson's ways out, in a real browser on the real embedded model: the lesson copied for the
learner's own AI (with the numbers measured live), the try-it list opening the lab filled in,
the lab telling prefill from decode, the course map and read next. The browser, the app and the
checks on every page (no script error, nothing a model wrote ever ran) are support/browser.py's."""

from __future__ import annotations

import json
import math

import httpx
import pytest
from support.browser import MODEL_WORK, open_page, shot
from support.curl import run_curl

from tokenloop.lessons.markdown import percent


def test_copy_this_lesson_for_your_ai_carries_the_live_numbers_and_the_guesses(page, served):  # noqa: F811
    from playwright.sync_api import expect

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=served)
    lesson = httpx.get(f"{served}/api/lesson").json()
    open_page(page, served)
    third = page.locator("#step-confidence")
    third.locator(".guess-number").fill("37")
    page.locator("#copy-for-ai").click()
    markdown = page.locator("#lesson-markdown")
    expect(markdown).to_contain_text(f"## {lesson['try_it']['title']}", timeout=MODEL_WORK)
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == markdown.text_content()
    live = httpx.post(f"{served}/api/next", json={"prompt": lesson["prompt"], "top_k": 8}, timeout=60).json()
    assert f"The top token got {percent(live['top'][0]['prob'])}" in copied  # measured on the connected model
    assert json.dumps(live["top"][0]["token"]) in copied and live["model"] in copied
    assert "The learner guessed: 37%." in copied
    for item in lesson["try_it"]["items"]:
        assert item["title"] in copied and f"{served}{item['href']}" in copied
    for prompt in lesson["ask_your_ai"]["prompts"]:
        assert prompt["title"] in copied
    assert lesson["for_your_ai"]["instruction"].split()[0] in copied
    shot(page.locator("#for-your-ai"), "lesson-for-your-ai.png")


def test_a_try_it_item_opens_the_lab_filled_in_and_the_lab_marks_prefill_and_decode(page, served):  # noqa: F811
    from playwright.sync_api import expect

    lesson = httpx.get(f"{served}/api/lesson").json()
    items = {i["id"]: i for i in lesson["try_it"]["items"]}
    open_page(page, served)
    expect(page.locator(".try-item")).to_have_count(len(items))
    page.locator(".try-item[data-id='no-cache'] a.try-link").click()
    page.wait_for_selector("body[data-ready='1']")
    assert page.url.endswith("/lab")  # the settings were read, then dropped from the address
    settings = items["no-cache"]["lab"]
    expect(page.locator("#prompt")).to_have_value(settings["prompt"])
    expect(page.locator("#cache")).not_to_be_checked()
    expect(page.locator("#max-new")).to_have_value(str(settings["max_new"]))
    expect(page.locator("#link-note")).to_contain_text(items["no-cache"]["title"])
    expect(page.locator("#summary")).to_contain_text("prompt tokens")  # started on the link's settings
    for _ in range(2):
        page.locator("#step").click()
    rows = page.locator("#steps-table tbody tr")
    expect(rows).to_have_count(2, timeout=MODEL_WORK)
    assert rows.locator("td:nth-child(6)").all_text_contents() == ["whole sequence"] * 2
    tokens_in = [int(t) for t in rows.locator("td:nth-child(5)").all_text_contents()]
    assert tokens_in[1] == tokens_in[0] + 1  # no cache: the whole sequence, one longer each step

    page.goto(f"{served}{items['greedy']['href']}")
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#cache")).to_be_checked()
    expect(page.locator("#prompt")).to_have_value(items["greedy"]["lab"]["prompt"])
    for _ in range(3):
        page.locator("#step").click()
    expect(rows).to_have_count(3, timeout=MODEL_WORK)
    assert rows.locator("td:nth-child(6)").all_text_contents() == ["prefill", "decode", "decode"]
    assert rows.locator("td:nth-child(5)").all_text_contents()[1:] == ["1", "1"]
    expect(page.locator("#phases")).to_contain_text("Prefill:")
    shot(page, "lab-from-try-it.png")


def test_a_link_with_bad_values_fills_in_only_the_good_ones(page, served):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{served}/lab?prompt=Hello%20there&temperature=9&seed=-1&top_p=0.5&colour=red&try=<b>")
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#prompt")).to_have_value("Hello there")
    expect(page.locator("#top-p")).to_have_value("0.5")
    expect(page.locator("#temperature")).to_have_value("0")  # out of the input's range: left as it was
    expect(page.locator("#seed")).to_have_value("")
    expect(page.locator("#link-note")).to_contain_text("temperature, seed, colour")


def test_the_course_map_renders_its_boxes_and_links_only_lessons_that_exist(page, served):  # noqa: F811
    from playwright.sync_api import expect

    lesson = httpx.get(f"{served}/api/lesson").json()
    course = lesson["course_map"]
    open_page(page, served)
    page.wait_for_selector("#course-map[data-ready='1']")
    boxes = page.locator("#course-map .map-box")
    expect(boxes).to_have_count(len(course["pipeline"]) + 1 + len(course["after"]) + len(course["beside"]))
    expect(page.locator("#map-loop")).to_contain_text(course["you_are_here"])
    expect(page.locator("#map-loop .map-parts li")).to_have_count(len(course["loop"]["parts"]))
    for number in (2, 3, 4, 6, 7, 8, 9, 10):
        expect(page.locator("#course-map")).to_contain_text(f"Lesson {number}")
    # Links only to the lessons this app has (GET /api/lessons): here day01 ("you are here") and day07.
    have = {item["id"] for item in httpx.get(f"{served}/api/lessons").json()}
    every = course["pipeline"] + course["loop"]["parts"] + course["after"] + course["beside"]
    linked = sorted(f"/?lesson={b['lesson']['id']}" for b in every if b.get("lesson", {}).get("id") in have)
    linked = sorted(linked + ([f"/?lesson={course['here']['id']}"] if course["here"]["id"] in have else []))
    hrefs = page.locator("#course-map a").evaluate_all("links => links.map((a) => a.getAttribute('href'))")
    assert sorted(hrefs) == linked and "/?lesson=day07" in linked, hrefs
    shot(page.locator("#course-map"), "lesson-course-map.png")

    # Where GET /api/lessons lists day01 (and no later lesson), only "you are here" links.
    listed = [{"id": "day01", "title": lesson["title"]}]
    page.route("**/api/lessons", lambda route: route.fulfill(json=listed))
    open_page(page, served)
    page.wait_for_selector("#course-map[data-ready='1']")
    links = page.locator("#course-map a")
    expect(links).to_have_count(1)
    expect(links).to_have_attribute("href", "/?lesson=day01")


def test_read_next_links_the_source_and_names_the_notebook_command(page, served):  # noqa: F811
    from playwright.sync_api import expect

    read_next = httpx.get(f"{served}/api/lesson").json()["read_next"]
    open_page(page, served)
    expect(page.locator("#read-source a")).to_have_attribute("href", read_next["source"]["url"])
    expect(page.locator("#notebook-command")).to_have_text(read_next["notebook"]["command"])


def test_the_curl_the_page_shows_gives_the_bars_the_page_drew(page, served):  # noqa: F811
    from playwright.sync_api import expect

    open_page(page, served)
    third = page.locator("#step-confidence")
    third.locator(".guess-number").fill("20")
    third.locator(".reveal").click()
    rows = page.locator("#lesson-bars .bar-row")
    expect(rows).to_have_count(8, timeout=MODEL_WORK)
    answer = run_curl(page.locator("#curl").text_content())  # as a learner pastes it into a terminal
    top = answer["choices"][0]["logprobs"]["top_logprobs"][0]
    assert rows.locator(".bar-token").all_text_contents() == [json.dumps(t, ensure_ascii=False) for t in top]
    bars = [float(p) for p in rows.evaluate_all("rows => rows.map(r => r.dataset.prob)")]
    assert [math.exp(v) for v in top.values()] == pytest.approx(bars, abs=1e-4)


def test_a_link_never_replaces_the_learners_run_without_asking(page, served):  # noqa: F811
    """A link from any page (another site's too) fills in the lab but asks before replacing a run."""
    from playwright.sync_api import expect

    open_page(page, f"{served}/lab")
    page.locator("#prompt").fill("My own run")
    page.locator("#step").click()
    rows = page.locator("#steps-table tbody tr")
    expect(rows).to_have_count(1, timeout=MODEL_WORK)
    page.goto(f"{served}/lab?prompt=Somebody%20else")
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#link-note")).to_contain_text("would replace your run")
    expect(page.locator("#prompt")).to_have_value("Somebody else")
    lab = page.evaluate("fetch('/api/lab').then((r) => r.json())")
    assert lab["prompt"] == "My own run" and len(lab["steps"]) == 1  # kept until the learner says so
    expect(rows).to_have_count(1)
    page.locator("#start").click()
    expect(page.locator("#summary")).to_contain_text("prompt tokens", timeout=MODEL_WORK)
    assert page.evaluate("fetch('/api/lab').then((r) => r.json())")["prompt"] == "Somebody else"
