"""Lesson 6 in a real browser (web/static/live_sampling.js), on the embedded model and on the real
vLLMs the tests start (raw logprobs, and processed for steps 2 and 4): every step guessed and
revealed, each reveal's number checked against draws/embedded.py called here on the same model or
against /v1/completions calls the test makes itself, and the source line (engine, version, model,
honesty tag) under each."""

from __future__ import annotations

import re

import pytest
from support.browser import MODEL_WORK, expect_server_source, open_page, reveal, shot, shown_source
from support.launcher import app_serving
from support.vllm_direct import completion as direct

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


def guessed(tab, step_id: str, value, field: str = "guess-number"):
    """Type a number into a step's guess (or estimate) box, then reveal the step."""
    tab.locator(f"#step-{step_id} .{field}").fill(str(value))
    tab.locator(f"#step-{step_id} .{field}").dispatch_event("input")
    return reveal(tab, step_id)


def favourite_at_two_in_process(tab, smol, prompt: str):
    """Step 2 computed on the embedded model (softmax(logits / 2) over the whole vocabulary),
    its verdict checked against draws/embedded.py called here."""
    from playwright.sync_api import expect

    box = guessed(tab, "temperature", 15)
    hot = draws.temperature_prob(smol, prompt)
    at2 = next(p for p in hot["points"] if p["temperature"] == 2)
    expect(box.locator(".verdict")).to_contain_text(
        f'{pct(at2["prob"])} for "{hot["token"]}" at T 2', timeout=MODEL_WORK
    )
    return box


def copied_for_ai(tab, lesson: dict) -> str:
    """Press the copy button: what lands on the clipboard, the same as the Markdown on the page."""
    from playwright.sync_api import expect

    tab.locator("#copy-for-ai").click()
    markdown = tab.locator("#lesson-markdown")
    expect(markdown).to_contain_text(f"## {lesson['read_next']['title']}", timeout=MODEL_WORK)
    copied = tab.evaluate("navigator.clipboard.readText()")
    assert copied == markdown.text_content() and "Not measured in this copy" not in copied
    return copied


def expect_source(box, model: str, tag: str):
    shown_source(box, "tokenloop embedded", model, tag=tag)


def test_lesson6_on_the_embedded_model(page, embedded_app, smol):  # noqa: F811  (page: a fixture)
    from playwright.sync_api import expect

    lesson = content.load("day06")
    prompt = lesson["prompt"]
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=embedded_app)
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
    box = favourite_at_two_in_process(page, smol, prompt)
    expect(box.locator(".verdict.wrong")).to_be_visible()  # 15% against about 1%
    expect_source(box, smol.model, "exact")

    # 3: 50 seeded draws at T 1, outside the top 5.
    box = guessed(page, "outside_top", 5)
    out = draws.outside_top(smol, prompt, draws=50)
    expect(box.locator(".live")).to_contain_text(f"{out['outside']} of 50 draws", timeout=MODEL_WORK)
    expect(box.locator(".live")).to_contain_text(f"add up to {pct(out['top_mass'])}")
    expect_source(box, smol.model, "exact")

    # 4: top_p 0.5's survivors.
    box = guessed(page, "top_p", 20000, field="estimate-number")
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

    # The copy for your own AI: the numbers the page revealed, step 5 graded as the page graded it.
    copied = copied_for_ai(page, lesson)
    for part in (
        f"The learner guessed: {lesson['steps'][0]['choices'][0]} (wrong).",
        f"largest difference over all 49,152 logits was {same['max_abs_diff']:g}",
        f"{out['outside']} of 50 draws at T 1 (seeds 0–49)",
        f"top_p 0.5 kept {kept['eligible']} of 49,152 tokens",
        f"The learner guessed: {lesson['steps'][4]['choices'][0]} ({'right' if measured == 0 else 'wrong'}).",
        "padded batch of 8",
    ):
        assert part in copied, (part, copied)


# On a real vLLM the test starts: the lesson's 50 draws, and 32 greedy tokens per request in step 5.
SMALL_VLLM = {**SMALL, "sampling_batch_steps": 32}


def server_app(url: str, smol):
    """The app with --url on a test vLLM, the embedded model beside it (what `tokenloop serve` does)."""
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(url, log=lambda message: None)
    return server, app_serving(create_app(server, compare=smol, server_url=server.root, demo=SMALL_VLLM))


def percents(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(\d+\.\d+)%", text)]


def consent(box):
    """A step that sends several requests: its plan, then Start."""
    from playwright.sync_api import expect

    expect(box.locator(".consent-plan")).to_be_visible(timeout=MODEL_WORK)
    plan = box.locator(".consent-plan").inner_text()
    box.locator(".consent-start").click()
    return plan


def test_lesson6_on_a_raw_vllm(page, vllm_url, smol):  # noqa: F811  (page: a fixture)
    """vLLM's default raw logprobs: steps 1, 3 and 5 on the server (3 and 5 after their plan and a
    click), 2 and 4 on the embedded model beside it with the server's one-line reason. Each number
    on the page checked against /v1/completions calls this test makes itself (or, for 2 and 4, the
    embedded computation called here)."""
    import json
    import math

    from playwright.sync_api import expect

    lesson = content.load("day06")
    prompt = lesson["prompt"]
    server, serving = server_app(vllm_url, smol)
    with serving as url:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
        open_page(page, f"{url}/?lesson=day06")
        expect(page.locator("#title")).to_have_text(lesson["title"])

        # 1: T 0.2 and T 1.5, seed 1, 20 raw logprobs each: the same numbers, the server's own draws.
        page.locator("#step-same_forward input[value='0']").check()
        box = reveal(page, "same_forward")
        live = box.locator(".live")
        expect(live).to_contain_text("the top 20 logprobs the server returned was", timeout=MODEL_WORK)
        text = live.inner_text()
        shown_diff = float(re.search(r"returned was ([\d.e+-]+)\.", text).group(1))
        asked = {t: direct(vllm_url, server.model, prompt, temperature=t, seed=1, logprobs=20) for t in (0.2, 1.5)}
        a, b = asked[0.2]["top"], asked[1.5]["top"]
        mine = max(abs(a[i] - b[i]) for i in a if i in b)
        assert min(len(a), len(b)) >= 20 and mine < 1e-3 and shown_diff < 1e-3, (
            mine,
            shown_diff,
        )  # + a pick below them
        for t, answer in asked.items():
            drew = f"T {t} drew {json.dumps(server.token_text(answer['pick']), ensure_ascii=False)} "
            assert drew + f"({pct(math.exp(answer['logprob']))})" in text, (drew, answer, text)
        expect(box.locator(".verdict.wrong")).to_be_visible()
        expect_server_source(box, server.model, "exact", server.root)

        # 2: a raw server can't show post-temperature numbers: the embedded model beside it, said so.
        box = favourite_at_two_in_process(page, smol, prompt)
        expect(box.locator(".live")).to_contain_text("Why not on the server: the server reports raw logprobs")
        expect_source(box, smol.model, "exact")

        # 3: the plan, a click, then 50 seeded draws counted outside the server's top 5.
        box = guessed(page, "outside_top", 5)
        assert "sends 50 one-token requests at T 1, one at a time (seeds 0–49)" in consent(box)
        expect(box.locator(".live")).to_contain_text("of 50 draws", timeout=MODEL_WORK * 3)
        text = box.locator(".live").inner_text()
        outside = int(re.search(r"(\d+) of 50 draws", text).group(1))
        top = direct(vllm_url, server.model, prompt, temperature=1.0, logprobs=5)["top"]
        picks = [direct(vllm_url, server.model, prompt, temperature=1.0, seed=s, logprobs=1)["pick"] for s in range(50)]
        # vLLM's seeded draws on CPU repeat only up to float noise: a draw whose uniform number falls at
        # a boundary between two tokens can land on the other one in a second call (a CI run saw 25 vs 24)
        assert abs(outside - sum(p not in top for p in picks)) <= 2, (outside, picks, top)
        mass = float(re.search(r"add up to ([\d.]+)%", text).group(1))
        assert abs(mass - 100 * sum(math.exp(lp) for lp in top.values())) < 1.0, (mass, top)  # see test_server.py
        expect_server_source(box, server.model, "exact", server.root)

        # 4: top_p needs processed logprobs: the embedded model's count beside the server.
        box = guessed(page, "top_p", 20000, field="estimate-number")
        kept = draws.top_p_kept(smol, prompt)
        expect(box.locator(".live")).to_contain_text(
            f"top_p 0.5 kept {kept['eligible']} of 49,152 tokens", timeout=MODEL_WORK
        )
        expect(box.locator(".live")).to_contain_text("Why not on the server: the server reports raw logprobs")
        expect(box.locator(".verdict.wrong")).to_be_visible()

        # 5: one greedy request alone, then 8 at once; the solo text against the test's own request.
        page.locator("#step-batch input[value='0']").check()
        box = reveal(page, "batch")
        assert "one greedy request of 32 tokens alone, then 8 identical ones at once" in consent(box)
        expect(box.locator(".live")).to_contain_text("identical greedy requests at once", timeout=MODEL_WORK * 3)
        text = box.locator(".live").inner_text()
        distinct = int(re.search(r"at once: (\d+) distinct text", text).group(1))
        diff = float(re.search(r"differed by at most ([\d.e+-]+),", text).group(1))
        alone = json.loads(re.search(r"Alone: (\".*?\"); in the batch:", text, re.S).group(1))
        mine = direct(vllm_url, server.model, prompt, max_tokens=32, temperature=0, ignore_eos=True, logprobs=1)
        assert alone == mine["text"] and 1 <= distinct <= 9, (alone, mine["text"], distinct)
        varied = diff > 0 or distinct > 1
        expect(box.locator(".verdict.wrong" if varied else ".verdict.right")).to_be_visible()
        expect_server_source(box, server.model, "cause differs", server.root)
        shot(page, "lesson6-vllm-raw.png")

        # The copy for your own AI: the page's numbers, and each guess graded as the page graded it.
        copied = copied_for_ai(page, lesson)
        batch_choices = lesson["steps"][4]["choices"]
        for part in (
            f"The learner guessed: {lesson['steps'][0]['choices'][0]} (wrong).",
            f"{outside} of 50 draws at T 1 (seeds 0–49)",
            f"top_p 0.5 kept {kept['eligible']} of 49,152 tokens",
            f"{distinct} distinct texts",
            f"The learner guessed: {batch_choices[0]} ({'wrong' if varied else 'right'}).",
            f"Computed on the vLLM server at {server.root}.",
            "Why not on the server: the server reports raw logprobs",
        ):
            assert part in copied, (part, copied)
        results = page.request.get(f"{url}/api/live/kept?lesson=day06").json()["results"]
        print(
            "\nraw vLLM, as shown:",
            {k: {f: v for f, v in r.items() if f not in ("source", "reveal")} for k, r in results.items()},
        )


def test_lesson6_steps_two_and_four_on_a_processed_vllm(page, vllm_processed_url, smol):  # noqa: F811
    """vLLM with --logprobs-mode processed_logprobs (and --max-logprobs 5): steps 2 and 4 read the
    server's post-sampler numbers, each checked against the test's own call; step 4's count is a
    floor where top_p kept all five the server returned, and the page says so, unscored."""
    import json
    import math

    from playwright.sync_api import expect

    prompt = content.load("day06")["prompt"]
    server, serving = server_app(vllm_processed_url, smol)
    with serving as url:
        open_page(page, f"{url}/?lesson=day06")

        # 2: the favourite at T 0.5, 1 and 2, as the server's processed logprobs give it.
        box = guessed(page, "temperature", 15)
        live = box.locator(".live")
        expect(live).to_contain_text("from the server's post-temperature logprobs", timeout=MODEL_WORK)
        asked = {
            t: direct(vllm_processed_url, server.model, prompt, temperature=t, seed=0, logprobs=5)
            for t in (0.5, 1.0, 2.0)
        }
        favourite = max(asked[1.0]["top"].items(), key=lambda kv: kv[1])[0]
        token = json.dumps(server.token_text(favourite), ensure_ascii=False)
        text = live.inner_text()
        assert text.startswith(f"{token}: "), (token, text)
        shown = re.findall(r"([\d.]+)% at T ([\d.]+)", text)
        assert [float(t) for _, t in shown] == [0.5, 1, 2], shown
        for (p, t), want in zip(shown, (0.5, 1.0, 2.0)):
            assert abs(float(p) - 100 * math.exp(asked[want]["top"][favourite])) < 0.15, (p, t, asked[want])
        expect(box.locator(".verdict")).to_contain_text(f"for {token} at T 2")
        expect_server_source(box, server.model, "exact", server.root)

        # 4: the finite entries after top_p 0.5, against the test's own call with the same settings.
        box = guessed(page, "top_p", 20000, field="estimate-number")
        expect(box.locator(".live")).to_contain_text("top_p 0.5 kept", timeout=MODEL_WORK)
        mine = direct(vllm_processed_url, server.model, prompt, temperature=1.0, top_p=0.5, seed=0, logprobs=5)["top"]
        finite = {i: lp for i, lp in mine.items() if math.isfinite(lp) and lp > -9999}
        text = box.locator(".live").inner_text()
        if len(finite) == len(mine):  # all five kept: a floor, the cap named, raised by the mass they hold
            raw = direct(vllm_processed_url, server.model, prompt, temperature=1.0, seed=0, logprobs=5)["top"]
            held = [math.exp(raw[i]) for i in finite]
            floor = len(finite) + max(0, math.ceil((0.5 - sum(held)) / min(held) - 1e-9))
            assert f"top_p 0.5 kept all {len(finite)} candidates the server returned" in text, text
            assert "its cap (vLLM's --max-logprobs) is 5" in text and f"at least {floor} in all" in text, (floor, text)
            expect(box.locator(".verdict.unscored")).to_contain_text(f"at least {floor} tokens")
        else:
            assert f"top_p 0.5 kept {len(finite)} of the {len(mine)} candidates the server returned" in text, text
            expect(box.locator(".verdict.wrong")).to_be_visible()
        expect_server_source(box, server.model, "exact", server.root)
        shot(page, "lesson6-vllm-processed.png")
        results = page.request.get(f"{url}/api/live/kept?lesson=day06").json()["results"]
        print(
            "\nprocessed vLLM, as shown:",
            {k: {f: v for f, v in r.items() if f not in ("source", "reveal")} for k, r in results.items()},
        )
