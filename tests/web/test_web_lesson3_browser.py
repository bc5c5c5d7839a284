"""Lesson 3 in a real browser on the embedded model (web/static/live_prefill.js): every step
guessed and revealed; the counts and positions checked against a direct computation by the test,
the timings by their structure, labels, source and honesty tag."""

from __future__ import annotations

import re

import pytest
from support.browser import MODEL_WORK, open_page, shot
from support.launcher import app_serving

from tokenloop.lessons import content
from tokenloop.web import create_app

SMALL = {
    "prefill_len": 48,
    "prefill_repeats": 2,
    "answer_tokens": 30,
    "answer_steps": 3,
    "attention_lens": [256, 512],
    "teacher_max_new": 6,
}


@pytest.fixture(scope="module")
def embedded_app(smol):
    with app_serving(create_app(smol, demo=SMALL)) as url:
        yield url


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


def test_lesson3_on_the_embedded_model(page, embedded_app, smol):  # noqa: F811  (page: a fixture)
    from playwright.sync_api import expect

    lesson = content.load("day03")
    open_page(page, f"{embedded_app}/?lesson=day03")
    expect(page.locator("#title")).to_have_text(lesson["title"])
    expect(page.locator("#course-map .map-box-here")).to_contain_text("prefill")

    # 1: TTFT and ITL against the prompt's length.
    box = page.locator("#step-phases")
    box.locator("input[name='curve-phases-0'][value='line']").check()
    box.locator("input[name='curve-phases-1'][value='flat']").check()
    box = reveal(page, "phases")
    expect(box.locator(".chart-phases svg path.series")).to_have_count(2, timeout=MODEL_WORK)
    expect(box.locator(".verdict.right, .verdict.unclear")).to_have_count(1)
    expect_source(box, smol.model, "shape")
    kept = page.request.get(f"{embedded_app}/api/live/kept?lesson=day03").json()["results"]["prefill_phases"]
    assert [s["n"] for s in kept["series"]][-1] == SMALL["prefill_len"]

    # 2: the ratio, from step 1's own numbers.
    box = page.locator("#step-token_cost")
    box.locator(".estimate-number").fill("50")
    box = reveal(page, "token_cost")
    expect(box.locator(".chart-cost .bar-row")).to_have_count(2, timeout=MODEL_WORK)
    slope, itl = kept["fit"]["b_ms_per_token"], kept["itl_ms"]
    if slope > 0:
        expect(box.locator(".live")).to_contain_text(f"cost {itl / slope:.0f}× a prompt token")
        expect(box.locator(".verdict")).to_contain_text("Measured:")
    expect_source(box, smol.model, "cause differs")

    # 3: a long answer against a long prompt; the answer's untimed steps projected, and said so.
    page.locator("#step-answer_vs_prompt input[value='1']").check()
    box = reveal(page, "answer_vs_prompt")
    expect(box.locator(".chart-answer-vs-prompt .bar-row")).to_have_count(2, timeout=MODEL_WORK)
    expect(box.locator(".live")).to_contain_text(f"{SMALL['answer_steps']} steps timed")
    expect_source(box, smol.model, "shape")

    # 4: a prediction at every prompt position: the test's own argmax of the (T, V) logits.
    page.locator("#step-positions input[value='1']").check()
    box = reveal(page, "positions")
    ids = smol.encode(lesson["prompt"])
    top = smol.all_logits(ids).argmax(-1).tolist()
    rows = box.locator("table.positions tr")
    expect(rows).to_have_count(len(ids) + 1, timeout=MODEL_WORK)
    for i, t in enumerate(top):
        assert (
            rows.nth(i + 1).locator("td").nth(2).inner_text().startswith(f'"{smol.token_text(t)}"'.replace("\n", "\\n"))
        )
    expect(box.locator(".live")).to_contain_text(f"{len(ids)} × {smol.vocab_size:,}")
    expect_source(box, smol.model, "exact")

    # 5: attention memory, bounded; 8,192 tokens projected and labelled so.
    box = page.locator("#step-attention_memory")
    box.locator(".estimate-number").fill("1000000000")
    box = reveal(page, "attention_memory")
    expect(box.locator(".chart-attention svg path.series")).to_have_count(2, timeout=MODEL_WORK)
    expect(box.locator(".verdict")).to_contain_text("Projected from 2 measured steps")
    expect(box.locator(".live")).to_contain_text("At 8,192 tokens, projected")
    expect_source(box, smol.model, "shape")

    # 6: where the first token's wait went: in process, tokenize + forward + the rest, graded
    # against the largest part the server-less split measured.
    page.locator("#step-ttft_account input[value='1']").check()
    box = reveal(page, "ttft_account")
    expect(box.locator(".chart-ttft-split .bar-row")).to_have_count(3, timeout=MODEL_WORK)
    kept = page.request.get(f"{embedded_app}/api/live/kept?lesson=day03").json()["results"]["ttft_account"]
    right = kept["largest"] == "server_ttft_ms"
    expect(box.locator(".verdict")).to_have_class(re.compile("right" if right else "wrong"))
    expect(box.locator(".live")).to_contain_text(f"{kept['prompt_tokens']}-token prompt")
    expect_source(box, smol.model, "shape")
    shot(page, "lesson3-embedded.png")
