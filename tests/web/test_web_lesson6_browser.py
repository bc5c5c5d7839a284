"""Lesson 6 in a real browser on the embedded model (web/static/live_sampling.js): every step
guessed and revealed, each reveal's number checked against draws/embedded.py called here on the
same model, and the source line (engine, version, model, honesty tag) under each."""

from __future__ import annotations

import re

import pytest
from support.browser import MODEL_WORK, open_page, shot
from support.launcher import app_serving

from tokenloop.draws import embedded as draws
from tokenloop.lessons import content
from tokenloop.web import create_app
from tokenloop.web.draws import NEIGHBOURS

SMALL = {"sampling_draws": 50, "sampling_batch_steps": 3, "teacher_max_new": 6}


@pytest.fixture(scope="module")
def embedded_app(smol):
    with app_serving(create_app(smol, demo=SMALL)) as url:
        yield url


def pct(p: float) -> str:
    return f"{100 * p:.{4 if 0 < p < 0.001 else 1}f}%"


def reveal(tab, step_id: str):
    box = tab.locator(f"#step-{step_id}")
    box.locator(".reveal").click()
    return box


def expect_source(box, model: str, tag: str):
    from playwright.sync_api import expect

    source = box.locator(".source").first
    expect(source).to_be_visible(timeout=MODEL_WORK)
    text = source.inner_text()
    assert "tokenloop embedded" in text and model in text and f"honesty: {tag}" in text, text
    assert re.search(r"\d+\.\d+", text), f"no version in {text!r}"


def test_lesson6_on_the_embedded_model(page, embedded_app, smol):  # noqa: F811  (page: a fixture)
    from playwright.sync_api import expect

    lesson = content.load("day06")
    prompt = lesson["prompt"]
    open_page(page, f"{embedded_app}/?lesson=day06")
    expect(page.locator("#title")).to_have_text(lesson["title"])
    expect(page.locator("#course-map .map-here")).to_have_text(lesson["course_map"]["you_are_here"])

    # 1: the logits at two temperatures, compared.
    page.locator("#step-same_forward input[value='0']").check()
    box = reveal(page, "same_forward")
    same = draws.same_forward(smol, prompt)
    live = box.locator(".live")
    expect(live).to_contain_text(f"logits was {same['max_abs_diff']:g}", timeout=MODEL_WORK)
    assert same["max_abs_diff"] == 0
    for run in same["runs"]:
        expect(live).to_contain_text(
            f'T {run["temperature"]} drew "{run["drawn"]["token"]}" ({pct(run["drawn"]["prob"])})'
        )
    expect(box.locator(".verdict.wrong")).to_be_visible()
    expect_source(box, smol.model, "exact")

    # 2: the favourite at T 2, softmax(logits / 2) over the whole vocabulary.
    page.locator("#step-temperature .guess-number").fill("15")
    page.locator("#step-temperature .guess-number").dispatch_event("input")
    box = reveal(page, "temperature")
    hot = draws.temperature_prob(smol, prompt)
    at2 = next(p for p in hot["points"] if p["temperature"] == 2)
    expect(box.locator(".verdict")).to_contain_text(
        f'{pct(at2["prob"])} for "{hot["token"]}" at T 2', timeout=MODEL_WORK
    )
    expect(box.locator(".verdict.wrong")).to_be_visible()  # 15% against about 1%
    expect_source(box, smol.model, "exact")

    # 3: 50 seeded draws at T 1, outside the top 5.
    page.locator("#step-outside_top .guess-number").fill("5")
    page.locator("#step-outside_top .guess-number").dispatch_event("input")
    box = reveal(page, "outside_top")
    out = draws.outside_top(smol, prompt, draws=50)
    expect(box.locator(".live")).to_contain_text(f"{out['outside']} of 50 draws", timeout=MODEL_WORK)
    expect(box.locator(".live")).to_contain_text(f"add up to {pct(out['top_mass'])}")
    expect_source(box, smol.model, "exact")

    # 4: top_p 0.5's survivors.
    page.locator("#step-top_p .estimate-number").fill("20000")
    page.locator("#step-top_p .estimate-number").dispatch_event("input")
    box = reveal(page, "top_p")
    kept = draws.top_p_kept(smol, prompt)
    expect(box.locator(".live")).to_contain_text(
        f"top_p 0.5 kept {kept['eligible']} of 49,152 tokens", timeout=MODEL_WORK
    )
    expect(box.locator(".verdict.wrong")).to_be_visible()
    expect_source(box, smol.model, "exact")

    # 5: alone and in a padded batch of 8; graded by what was measured.
    page.locator("#step-batch input[value='0']").check()
    box = reveal(page, "batch")
    expect(box.locator(".live")).to_contain_text("padded batch of 8", timeout=MODEL_WORK * 3)
    text = box.locator(".live").inner_text()
    measured = float(re.search(r"differed by at most ([\d.e+-]+),", text).group(1))
    direct = draws.alone_vs_batch(smol, prompt, NEIGHBOURS, steps=3)
    assert (measured > 0) == (direct["max_abs_diff"] > 0), (measured, direct["max_abs_diff"])
    expect(box.locator(".verdict.right" if measured == 0 else ".verdict.wrong")).to_be_visible()
    expect_source(box, smol.model, "cause differs")
    shot(page, "lesson6-embedded.png")
