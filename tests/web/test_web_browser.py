"""The lesson and the lab in a real browser: headless Debian chromium driven by Playwright, against
the app served by uvicorn on 127.0.0.1 with the real embedded model (tokenloop/web/static/ through
tokenloop/web/app.py). The browser, the app (`served`) and the checks on every page are the
fixtures of support/browser.py. Screenshots of both pages are saved to test-artifacts/.
"""

from __future__ import annotations

import httpx
import pytest
from support.browser import MODEL_WORK, open_page, shot

PAYLOAD = '<img src=x onerror="alert(1)"><script>alert(2)</script>'

pytestmark = pytest.mark.model


def test_lesson_guess_then_reveal_with_live_bars_and_progress_kept(page, served):
    from playwright.sync_api import expect

    lesson = httpx.get(f"{served}/api/lesson").json()
    open_page(page, served)
    first = page.locator("#step-loop")
    expect(first.locator(".reveal")).to_be_disabled()  # no guess, no reveal
    first.locator("input[value='0']").check()
    expect(first.locator(".reveal")).to_be_enabled()
    first.locator(".reveal").click()
    expect(first.locator(".verdict.wrong")).to_contain_text(lesson["steps"][0]["choices"][0])  # the guess, beside
    expect(first.locator(".verdict.wrong")).to_contain_text(lesson["steps"][0]["choices"][1])  # the answer

    # Step 3: guess the top token's probability, then the live bars from the connected model.
    third = page.locator("#step-confidence")
    expect(third.locator(".reveal")).to_be_disabled()
    third.locator(".guess-number").fill("40")
    third.locator(".reveal").click()
    rows = page.locator("#lesson-bars .bar-row")
    expect(rows).to_have_count(8, timeout=MODEL_WORK)
    api = httpx.post(
        f"{served}/api/next", json={"prompt": lesson["prompt"], "top_k": 8}, timeout=MODEL_WORK / 1000
    ).json()
    assert [int(i) for i in rows.evaluate_all("rows => rows.map(r => r.dataset.id)")] == [c["id"] for c in api["top"]]
    assert rows.locator(".bar-prob").all_text_contents() == [f"{100 * c['prob']:.1f}%" for c in api["top"]]
    expect(third.locator(".live").first).to_contain_text("You guessed 40%")
    shot(third, "lesson-step3.png")

    # Recall cards hide their answers until their button is pressed (test_web_readable_browser.py).
    card = page.locator(".recall-card").first
    expect(card.locator(".recall-answer")).to_be_hidden()
    card.locator(".recall-show").click()
    expect(card.locator(".recall-answer")).to_be_visible()

    # Explain it to a colleague: write first, then the model answer.
    expect(page.locator("#colleague-compare")).to_be_disabled()
    page.locator("#colleague-text").fill("runs the prompt through the weights and picks one token, again and again")
    page.locator("#colleague-compare").click()
    expect(page.locator("#colleague")).to_contain_text(lesson["colleague"]["model_answer"][:40])

    # The quiz: all right but the first.
    for i, q in enumerate(lesson["quiz"]):
        page.locator(f"input[name='quiz-{i}'][value='{(q['answer'] + (i == 0)) % len(q['choices'])}']").check()
    page.locator("#quiz-check").click()
    total = len(lesson["quiz"])
    expect(page.locator("#quiz-score")).to_have_text(f"Score: {total - 1} / {total}")

    # The three prompts for your own AI, in order, each with a copy button; the raw call.
    prompts = page.locator(".ask-prompt")
    expect(prompts).to_have_count(3)
    assert [t.strip() for t in prompts.locator(".quote").all_text_contents()] == [
        p["text"].strip() for p in lesson["ask_your_ai"]["prompts"]
    ]
    expect(prompts.locator("button.copy")).to_have_count(3)
    expect(page.locator("#curl")).to_contain_text("/v1/completions")
    shot(page, "lesson.png")

    # A reload keeps the guesses, the reveals and the quiz.
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    expect(first.locator(".verdict.wrong")).to_be_visible()
    expect(first.locator("input[value='0']")).to_be_checked()
    expect(third.locator(".guess-number")).to_have_value("40")
    expect(page.locator("#quiz-score")).to_have_text(f"Score: {total - 1} / {total}")
    expect(page.locator("#colleague-text")).to_have_value(
        "runs the prompt through the weights and picks one token, again and again"
    )


def test_lesson_demos_draw_live_training_and_staircase(page, served):
    from playwright.sync_api import expect

    open_page(page, served)
    for step in ("training", "cost"):
        page.locator(f"#step-{step} input[value='1']").check()
        page.locator(f"#step-{step} .reveal").click()
    page.locator("button.run-staircase").click()
    chart = page.locator(".demo-staircase svg.chart")
    expect(chart.locator("path.series")).to_have_count(2, timeout=MODEL_WORK)  # without and with a cache
    expect(page.locator(".demo-staircase details.fit-details")).to_contain_text(
        "R²"
    )  # a fit statistic: in Details only
    assert "R²" not in page.locator(".demo-staircase p.live").inner_text()
    page.locator("button.run-training").click()
    demo = page.locator(".demo-training")
    expect(demo).to_contain_text("One training step took", timeout=MODEL_WORK)
    expect(demo.locator("svg.chart path.series")).to_have_count(1)  # the loss curve
    trained = page.request.get(f"{served}/api/training").json()["result"]  # this browser's session keeps it
    expect(demo.locator(".source")).to_contain_text("in this process")  # the model that trained, named by its result
    expect(demo).to_contain_text(f"{trained['cost']['ratio']:.1f}× the time")  # the page shows the measured ratio
    shot(page.locator("#step-cost"), "lesson-staircase.png")
    shot(page.locator("#step-training"), "lesson-training.png")


def test_teacher_streams_an_answer_and_shows_the_question_as_text(page, served):
    from playwright.sync_api import expect

    open_page(page, served)
    expect(page.locator("#teacher-model")).to_contain_text("SmolLM2")
    page.locator("#teacher-question").fill("<b>What is a token?</b>")
    page.locator("#teacher-ask").click()
    expect(page.locator(".teacher-question")).to_have_text("<b>What is a token?</b>")
    ask_model = page.locator(".teacher-ask-model")  # a small model answers only when asked to
    expect(ask_model).to_have_count(1, timeout=MODEL_WORK)
    ask_model.click()
    expect(ask_model).to_have_count(0)
    expect(page.locator("#teacher-ask")).to_be_enabled(timeout=MODEL_WORK)  # the stream ended
    answer = page.locator(".teacher-answer")
    assert answer.text_content().strip() and answer.get_attribute("data-model") == "SmolLM2-135M-Instruct"
    assert page.locator("#teacher b").count() == 0


def test_lab_step_run_stop_branch_and_reload(page, served):
    from playwright.sync_api import expect

    open_page(page, f"{served}/lab")
    page.locator("#prompt").fill("Kubernetes pods are scheduled by the")
    page.locator("#step").click()
    tokens = page.locator("#text .tok.gen")
    expect(tokens).to_have_count(1, timeout=MODEL_WORK)
    expect(page.locator("#raw-bars .bar-row")).to_have_count(8)
    expect(page.locator("#processed-bars")).to_contain_text("Greedy")
    first = httpx.post(
        f"{served}/api/next", json={"prompt": "Kubernetes pods are scheduled by the", "top_k": 8}
    ).json()["top"]
    assert tokens.first.text_content() == first[0]["token"]  # greedy: the top of the raw distribution

    # Run, then Stop after a few tokens.
    page.locator("#max-new").fill("60")
    page.locator("#run").click()
    expect(page.locator("#stop")).to_be_enabled()
    expect(page.locator("#text .tok.gen:nth-child(12)")).to_be_attached(timeout=MODEL_WORK)  # 9 prompt + 3 generated
    page.locator("#stop").click()
    expect(page.locator("#stop")).to_be_disabled(timeout=MODEL_WORK)
    expect(page.locator("#summary")).to_contain_text("Stopped: you pressed Stop")
    ran = tokens.count()
    assert 3 <= ran < 61 and page.locator("#steps-table tbody tr").count() == ran

    # Hover a token: its step's candidates. Click it, then click a bar: branch from there.
    tokens.first.hover()
    expect(page.locator("#tip .bar-row")).to_have_count(8)
    tokens.first.click()
    expect(page.locator("#dist-title")).to_contain_text("step 1")
    page.locator("#raw-bars .bar-row").nth(2).click()
    expect(tokens).to_have_count(1)
    assert tokens.first.text_content() == first[2]["token"]
    expect(page.locator("#summary")).to_contain_text("Branched at step 1")
    page.locator("#step").click()
    expect(tokens).to_have_count(2, timeout=MODEL_WORK)
    expect(page.locator("#steps-table tbody tr").nth(0)).to_contain_text("your pick")

    exported = page.request.get(f"{served}/api/lab/export").text().splitlines()  # the browser's own session
    assert len(exported) == 3
    texts = tokens.all_text_contents()
    shot(page, "lab.png")
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    expect(tokens).to_have_count(2)
    assert tokens.all_text_contents() == texts


def test_lab_shows_html_in_prompts_as_text_and_errors_as_messages(page, served):
    from playwright.sync_api import expect

    open_page(page, f"{served}/lab")
    page.locator("#prompt").fill(PAYLOAD)
    page.locator("#start").click()
    expect(page.locator("#text .tok.prompt").first).to_be_attached(timeout=MODEL_WORK)
    assert page.locator("#text").text_content() == PAYLOAD
    page.locator("#step").click()
    expect(page.locator("#text .tok.gen")).to_have_count(1, timeout=MODEL_WORK)
    page.locator("#score-text").fill(PAYLOAD)
    page.locator("#score-run").click()
    expect(page.locator("#score-out .tok").first).to_be_attached(timeout=MODEL_WORK)
    assert page.locator("#score-out").text_content() == PAYLOAD
    assert page.locator("main img, main script").count() == 0  # nothing became an element

    # A request the model can't take: a message in the page, and the page still works.
    page.locator("#prompt").fill("x " * 1900)  # under the 4000 characters, over the lab's 1024 tokens
    page.locator("#start").click()
    expect(page.locator("#status")).to_contain_text("shorten it", timeout=30_000)
    expect(page.locator("#step")).to_be_enabled()
