"""Lesson 2 in a real browser (web/static/live_tokens.js), on the embedded model and on a real
vLLM the test starts: every step guessed and revealed, and each reveal's numbers checked against
a direct call the test makes (the tokenizer, the app's own /tokenize and /v1/completions, or the
server's /tokenize, /v1/chat/completions and prompt_logprobs), never against a constant."""

from __future__ import annotations

import json

import pytest
from support.browser import MODEL_WORK, open_page, reveal, shot, shown_source
from support.curl import run_curl
from support.launcher import app_serving

from tokenloop.cost import tokens
from tokenloop.lessons import content
from tokenloop.measure import filler
from tokenloop.web import create_app

LESSON = content.load("day02")
PROMPT = LESSON["prompt"]
MESSAGES = [{"role": "user", "content": PROMPT}]
SAMPLES = next(s for s in LESSON["steps"] if s["id"] == "text_kinds")["samples"]


def chips_of(box) -> list[tuple[str, int]]:
    from playwright.sync_api import expect

    chips = box.locator(".token-chips").first.locator(".token-chip")
    expect(chips.first).to_be_visible(timeout=MODEL_WORK)
    return [
        (json.loads(c.locator(".chip-piece").inner_text()), int(c.locator(".chip-id").inner_text()))
        for c in chips.all()
    ]


def expect_source(box, model: str, engine: str):
    shown_source(box, engine, model, tag="exact", version=False)


def dearest(count) -> str:
    """The kind with the most tokens per 1,000 characters, by the test's own counts."""
    return max(SAMPLES, key=lambda kind: count(SAMPLES[kind]) / len(SAMPLES[kind]))


@pytest.fixture(scope="module")
def embedded_app(smol):
    with app_serving(create_app(smol, lesson="day02")) as url:
        yield url


def test_lesson2_on_the_embedded_model(page, embedded_app, smol):  # noqa: F811  (page: a fixture)
    from playwright.sync_api import expect

    url = embedded_app
    open_page(page, f"{url}/?lesson=day02")
    expect(page.locator("#title")).to_have_text(LESSON["title"])
    expect(page.locator("#course-map .map-box-here").first).to_contain_text("tokenize")
    boxes = {}
    page.locator("#step-pieces .estimate-number").fill("6")
    boxes["pieces"] = reveal(page, "pieces")

    # 1: the pieces and their ids, as the tokenizer cuts them.
    ids = smol.encode(PROMPT)
    assert chips_of(boxes["pieces"]) == [(smol.token_text(i), i) for i in ids]
    expect(boxes["pieces"].locator(".live")).to_contain_text(f"{len(ids)} tokens")
    expect(boxes["pieces"].locator(".verdict")).to_contain_text("Measured")
    expect_source(boxes["pieces"], smol.model, "tokenloop embedded")

    # 2: the chat template's count: the app's own /tokenize with messages, and its chat call's usage.
    page.locator("#step-chat_template .estimate-number").fill("10")
    box = reveal(page, "chat_template")
    direct = page.request.post(f"{url}/tokenize", data={"messages": MESSAGES, "return_token_strs": True}).json()
    usage = page.request.post(
        f"{url}/v1/chat/completions", data={"messages": MESSAGES, "max_tokens": 1, "temperature": 0}
    ).json()["usage"]
    assert chips_of(box) == list(zip(direct["token_strs"], direct["tokens"], strict=True))
    assert usage["prompt_tokens"] == direct["count"]
    expect(box.locator(".token-chips .chip-yours")).to_have_count(len(ids))
    expect(box.locator(".live")).to_contain_text(
        f"Your {len(ids)} tokens became {direct['count']}: the template added {direct['count'] - len(ids)}"
    )
    expect(box.locator(".live")).to_contain_text(f"{usage['prompt_tokens']} (the same count)")
    expect_source(box, smol.model, "tokenloop embedded")

    # 3: tokens per 1,000 characters, graded against the dearest the test counts itself.
    page.locator("#step-text_kinds input[value='5']").check()
    box = reveal(page, "text_kinds")
    expect(box.locator(".chart-per-kchar .bar-row")).to_have_count(len(SAMPLES), timeout=MODEL_WORK)
    worst = dearest(lambda text: len(smol.encode(text)))
    expect(box.locator(".verdict")).to_have_class("verdict " + ("right" if worst == "Chinese prose" else "wrong"))
    for kind, text in SAMPLES.items():
        expect(box.locator(".live")).to_contain_text(f"{kind} {round(1000 * len(smol.encode(text)) / len(text))} (")
    expect_source(box, smol.model, "tokenloop embedded")

    # 4: at the limit: the app's own /v1/completions, called by the test with the same ids.
    page.locator("#step-limits input[value='2']").check()
    box = reveal(page, "limits")
    expect(box.locator(".limits-near")).to_be_visible(timeout=MODEL_WORK)
    near = filler.token_ids(smol, smol.context_length - tokens.ROOM)
    answer = page.request.post(
        f"{url}/v1/completions", data={"prompt": near, "max_tokens": tokens.ASKED, "temperature": 0}
    )
    assert answer.status == 400
    expect(box.locator(".limits-near")).to_contain_text(f"HTTP 400: {json.dumps(answer.json()['error']['message'])}")
    over = filler.token_ids(smol, smol.context_length + tokens.OVER)
    answer = page.request.post(f"{url}/v1/completions", data={"prompt": over, "max_tokens": 1})
    expect(box.locator(".limits-over")).to_contain_text(
        f"HTTP {answer.status}: {json.dumps(answer.json()['error']['message'])}"
    )
    expect(box.locator(".verdict")).to_have_class("verdict wrong")  # guessed "fewer"; this endpoint refuses
    expect_source(box, smol.model, "tokenloop embedded")

    # 5: each piece's rank, against the test's own logits.
    page.locator("#step-surprise .guess-number").fill("30")
    box = reveal(page, "surprise")
    logits = smol.all_logits(ids).float()
    ranks = [int((logits[i - 1] > logits[i - 1, t]).sum()) + 1 for i, t in enumerate(ids) if i]
    shown = box.locator(".token-chips .chip-rank")
    expect(shown).to_have_count(len(ids), timeout=MODEL_WORK)
    assert shown.all_inner_texts() == ["first"] + [f"rank {r:,}" for r in ranks]
    top1 = sum(r == 1 for r in ranks)
    expect(box.locator(".verdict")).to_contain_text(f"({top1} of {len(ranks)} pieces ranked 1)")
    expect_source(box, smol.model, "tokenloop embedded")
    shot(page, "lesson2-embedded.png")

    # The copy for your AI: the page's text is the clipboard's, with the counts the page drew.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page.locator("#copy-for-ai").click()
    markdown = page.locator("#lesson-markdown")
    expect(markdown).to_contain_text(f"## {LESSON['try_it']['title']}", timeout=MODEL_WORK)
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == markdown.text_content()
    for part in (
        f"**{len(ids)} tokens**",
        f"became **{direct['count']}**",
        f"| {worst} | {len(SAMPLES[worst])} |",
        json.dumps(answer.json()["error"]["message"]),
        f"{top1} of {len(ranks)} pieces",
        "The learner guessed: Chinese prose",
    ):
        assert part in copied, part


@pytest.fixture(scope="module")
def vllm_app(smol, vllm_url):
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(vllm_url, log=lambda message: None)
    with app_serving(create_app(server, compare=smol, lesson="day02", server_url=server.root)) as url:
        yield url, server


def test_lesson2_on_a_real_vllm(page, vllm_app):  # noqa: F811  (page: a fixture)
    from playwright.sync_api import expect

    url, server = vllm_app
    call = lambda path, body: server.client.call("POST", path, {"model": server.model, **body})  # noqa: E731
    open_page(page, f"{url}/?lesson=day02")
    expect(page.locator("#title")).to_have_text(LESSON["title"])

    # 1: the server's own /tokenize with return_token_strs.
    page.locator("#step-pieces .estimate-number").fill("6")
    box = reveal(page, "pieces")
    direct = call("/tokenize", {"prompt": PROMPT, "return_token_strs": True})
    assert chips_of(box) == list(zip(direct["token_strs"], direct["tokens"], strict=True))
    expect(box.locator(".raw-request pre")).to_contain_text(f"{server.root}/tokenize")
    expect_source(box, server.model, "vLLM")

    # 2: /tokenize with messages, and usage.prompt_tokens of a real chat call.
    page.locator("#step-chat_template .estimate-number").fill("10")
    box = reveal(page, "chat_template")
    chat = call("/tokenize", {"messages": MESSAGES, "add_generation_prompt": True, "return_token_strs": True})
    usage = call("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 1, "temperature": 0})["usage"]
    assert chips_of(box) == list(zip(chat["token_strs"], chat["tokens"], strict=True))
    expect(box.locator(".token-chips .chip-yours")).to_have_count(direct["count"])
    expect(box.locator(".live")).to_contain_text(
        f"became {chat['count']}: the template added {chat['count'] - direct['count']}"
    )
    expect(box.locator(".live")).to_contain_text(f"real /v1/chat/completions call: {usage['prompt_tokens']}")
    expect_source(box, server.model, "vLLM")

    # 3: every sample counted by the server's /tokenize.
    page.locator("#step-text_kinds input[value='5']").check()
    box = reveal(page, "text_kinds")
    expect(box.locator(".chart-per-kchar .bar-row")).to_have_count(len(SAMPLES), timeout=MODEL_WORK)
    count = lambda text: call("/tokenize", {"prompt": text})["count"]  # noqa: E731
    for kind, text in SAMPLES.items():
        expect(box.locator(".live")).to_contain_text(f"{kind} {round(1000 * count(text) / len(text))} (")
    worst = dearest(count)
    expect(box.locator(".verdict")).to_have_class("verdict " + ("right" if worst == "Chinese prose" else "wrong"))
    expect_source(box, server.model, "vLLM")

    # 4: the same two requests, sent again by the test.
    page.locator("#step-limits input[value='2']").check()
    box = reveal(page, "limits")
    expect(box.locator(".limits-near")).to_be_visible(timeout=MODEL_WORK * 4)
    context = call("/tokenize", {"prompt": "x"})["max_model_len"]
    near = call(
        "/v1/completions",
        {"prompt": filler.token_ids(server, context - tokens.ROOM), "max_tokens": tokens.ASKED, "temperature": 0},
    )
    done, finish = near["usage"]["completion_tokens"], near["choices"][0]["finish_reason"]
    expect(box.locator(".limits-near")).to_contain_text(f'HTTP 200, {done} tokens back, finish_reason "{finish}"')
    pasted = run_curl(box.locator(".raw-request pre").text_content())  # "See it raw", run as written
    assert pasted["usage"] == near["usage"] and pasted["choices"][0]["finish_reason"] == finish
    from tokenloop.backends.server.client import Refused

    with pytest.raises(Refused) as refused:
        call("/v1/completions", {"prompt": filler.token_ids(server, context + tokens.OVER), "max_tokens": 1})
    expect(box.locator(".limits-over")).to_contain_text(
        f"HTTP {refused.value.status}: {json.dumps(refused.value.server_message)}"
    )
    right = (
        tokens.outcome(
            {
                "status": 200,
                "prompt_tokens": context - tokens.ROOM,
                "max_tokens": tokens.ASKED,
                "usage_prompt": near["usage"]["prompt_tokens"],
                "completion_tokens": done,
            }
        )
        == "fewer"
    )
    expect(box.locator(".verdict")).to_have_class("verdict " + ("right" if right else "wrong"))
    expect_source(box, server.model, "vLLM")

    # 5: each piece's rank from the test's own prompt_logprobs call.
    page.locator("#step-surprise .guess-number").fill("30")
    box = reveal(page, "surprise")
    ids = direct["tokens"]
    entries = call("/v1/completions", {"prompt": ids, "max_tokens": 1, "temperature": 0, "prompt_logprobs": 1})[
        "choices"
    ][0]["prompt_logprobs"]
    ranks = [entries[i][str(t)]["rank"] for i, t in enumerate(ids) if i]
    shown = box.locator(".token-chips .chip-rank")
    expect(shown).to_have_count(len(ids), timeout=MODEL_WORK)
    assert shown.all_inner_texts() == ["first"] + [f"rank {r:,}" for r in ranks]
    expect(box.locator(".raw-request pre")).to_contain_text('"prompt_logprobs":1')
    expect_source(box, server.model, "vLLM")
    shot(page, "lesson2-vllm.png")
