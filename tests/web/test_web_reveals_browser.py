"""Reveals in the browser (`static/live_kv.js`, `static/lesson.js`): a reload draws the kept
numbers and sends no measuring request (counted from the page's own requests), no 409; an effect
inside the spread of its repeats reads "can't tell" and is not graded; a what-if is not scored."""

from __future__ import annotations

import json
import re

from support.browser import MODEL_WORK, measuring_requests, open_page, shot


def test_a_reload_draws_the_kept_numbers_and_measures_nothing(page, served):
    from playwright.sync_api import expect

    sent = measuring_requests(page)
    open_page(page, f"{served}/?lesson=day07")
    box = page.locator("#step-causal")
    box.locator("input[value='1']").check()
    box.locator(".reveal").click()
    expect(box.locator(".live")).to_contain_text("largest difference 0 (K) and 0 (V)", timeout=MODEL_WORK)
    box = page.locator("#step-capacity")
    box.locator(".estimate-number").fill("500")
    box.locator(".reveal").click()
    expect(box.locator(".verdict")).to_contain_text("What-if, not measured:", timeout=MODEL_WORK)
    expect(box.locator(".verdict.right, .verdict.wrong")).to_have_count(0)  # a what-if is never scored
    expect(box.locator(".source")).to_contain_text("what-if")
    assert "honesty: exact" not in box.locator(".source").inner_text()
    drawn = page.locator("#step-causal .live").inner_text()
    assert len(sent) == 2, sent

    responses = []
    page.on("response", lambda r: responses.append(r.status) if "/api/" in r.url else None)
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    expect(page.locator("#step-causal .live")).to_have_text(drawn)  # the same numbers, drawn again
    expect(page.locator("#step-causal .measured-at")).to_contain_text("Measured")
    expect(page.locator("#step-capacity .verdict")).to_contain_text("What-if, not measured:")
    page.wait_for_timeout(1500)
    assert len(sent) == 2, sent  # nothing measured on the reload
    assert 409 not in responses, responses

    page.locator("#step-causal .measure-again").click()  # only a click measures again
    expect(page.locator("#step-causal .live")).to_contain_text("largest difference 0", timeout=MODEL_WORK)
    assert len(sent) == 3, sent
    shot(page.locator("#step-capacity"), "reveal-what-if.png")


WITHIN_NOISE = {
    "points": [
        {
            "context": 8,
            "ms": 48.0,
            "low_ms": 40.0,
            "high_ms": 55.0,
            "spread_ms": 15.0,
            "samples_ms": [40.0, 55.0, 48.0],
        },
        {
            "context": 32,
            "ms": 44.6,
            "low_ms": 38.0,
            "high_ms": 52.0,
            "spread_ms": 14.0,
            "samples_ms": [38.0, 52.0, 44.6],
        },
    ],
    "repeats": 3,
    "ratio": 44.6 / 48.0,
    "shortest": 8,
    "longest": 32,
    "effect": {
        "verdict": "unclear",
        "why": "the two ranges of repeats overlap",
        "change": 44.6 / 48.0 - 1,
        "before": {"median": 48.0, "low": 40.0, "high": 55.0, "runs": 3},
        "after": {"median": 44.6, "low": 38.0, "high": 52.0, "runs": 3},
    },
    "reveal": {"kind": "measured", "scored": True},
    "source": {
        "engine": "tokenloop embedded (transformers float32)",
        "version": "torch 2.0",
        "model": "m",
        "hardware": "cpu",
        "cpu": True,
        "where": "in this process",
    },
}


def test_an_effect_within_the_noise_reads_cant_tell_and_is_not_graded(page, served):
    """Lesson 7 step 3 measured -7% with overlapping repeats: no verdict right or wrong, "can't tell"."""
    from playwright.sync_api import expect

    def answer(route):
        route.fulfill(status=200, content_type="application/json", body=json.dumps(WITHIN_NOISE))

    page.route(re.compile(r".*/api/live/context_cost.*"), answer)
    open_page(page, f"{served}/?lesson=day07")
    box = page.locator("#step-long_context")
    box.locator("input[value='1']").check()
    box.locator(".reveal").click()
    expect(box.locator(".verdict.unclear")).to_contain_text("Can't tell on this machine now", timeout=MODEL_WORK)
    expect(box.locator(".verdict.right, .verdict.wrong")).to_have_count(0)
    expect(box.locator(".chart-context path.whisker")).to_have_count(2)  # the spread, drawn
    assert "R²" not in box.inner_text()
    shot(box, "reveal-cant-tell.png")
