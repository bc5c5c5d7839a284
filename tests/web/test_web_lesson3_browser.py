"""Lesson 3 in a real browser (web/static/live_prefill.js), on the embedded model and on a real
vLLM the test starts: every step guessed and revealed; the counts and positions checked against a
direct computation or call by the test, the timings by their structure, labels, source and honesty
tag, and on vLLM the drawn numbers against what the app kept."""

from __future__ import annotations

import re

import pytest
from support.browser import MODEL_WORK, expect_server_source, open_page, reveal, shot, shown_source
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


def expect_source(box, model: str, tag: str):
    shown_source(box, "tokenloop embedded", model, tag=tag)


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


# On a real vLLM: small enough for a minute or two on its CPU build, long enough (256 tokens) for
# the first-token time to rise with the prompt.
SMALL_VLLM = {**SMALL, "prefill_len": 256, "answer_tokens": 24}


@pytest.fixture(scope="module")
def vllm_app(smol, vllm_url):
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(vllm_url, log=lambda message: None)
    app = create_app(server, compare=smol, server_url=server.root, demo=SMALL_VLLM)
    with app_serving(app) as url:
        yield url, server


def fixed(value: float, places: int) -> str:
    """JavaScript's `value.toFixed(places)`: the exact binary value, ties away from zero."""
    from decimal import ROUND_HALF_UP, Decimal

    return str(Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def ms(value: float) -> str:
    """charts.js's `ms`."""
    return fixed(value, 0 if value >= 100 else 1) + " ms"


def test_lesson3_on_a_real_vllm(page, vllm_app, smol):  # noqa: F811  (page: a fixture)
    """Every step guessed and revealed with --url on the test's own vLLM: steps 1-3 draw exactly
    the numbers the app kept (step 2's ratio is step 1's ITL ÷ slope), step 4's top-1 at every
    position is the server's rank-1 from a prompt_logprobs call the test makes, step 5 runs in this
    process and says so, step 6 splits each request's TTFT by vLLM's own per-request metrics."""
    import json

    from playwright.sync_api import expect

    from tokenloop.backends.server import dialects
    from tokenloop.cost.server_staircase import send

    url, server = vllm_app
    lesson = content.load("day03")
    open_page(page, f"{url}/?lesson=day03")
    expect(page.locator("#title")).to_have_text(lesson["title"])

    def kept(key: str) -> dict:
        return page.request.get(f"{url}/api/live/kept?lesson=day03").json()["results"][key]

    # 1: TTFT and ITL against the prompt's length, timed on the server.
    box = page.locator("#step-phases")
    box.locator("input[name='curve-phases-0'][value='line']").check()
    box.locator("input[name='curve-phases-1'][value='flat']").check()
    box = reveal(page, "phases")
    expect(box.locator(".chart-phases svg path.series")).to_have_count(2, timeout=MODEL_WORK)
    expect(box.locator(".verdict.right, .verdict.unclear")).to_have_count(1)
    expect_server_source(box, server.model, "shape", server.root)
    phases = kept("prefill_phases")
    assert phases["on"] == "server" and phases["source"]["engine"] == "vLLM"
    a, b = phases["series"][0], phases["series"][-1]
    assert b["n"] > a["n"] and b["ttft_ms"] > 0 and b["itl_ms"] > 0
    text = box.locator(".live").inner_text()
    for part in (
        f"From {a['n']} to {b['n']} prompt tokens",
        f"went from {ms(a['ttft_ms'])} to {ms(b['ttft_ms'])}",
        f"from {ms(a['itl_ms'])} to {ms(b['itl_ms'])}",
        f"{phases['fit']['formula']} (R² {fixed(phases['fit']['r2'], 3)})",
        "on the server, every prompt new to its cache",
    ):
        assert part in text, (part, text)

    # 2: the ratio, step 1's ITL ÷ its slope.
    box = page.locator("#step-token_cost")
    box.locator(".estimate-number").fill("50")
    box = reveal(page, "token_cost")
    expect(box.locator(".chart-cost .bar-row")).to_have_count(2, timeout=MODEL_WORK)
    expect_server_source(box, server.model, "cause differs", server.root)
    cost, slope, itl = kept("token_cost"), phases["fit"]["b_ms_per_token"], phases["itl_ms"]
    assert cost["itl_ms"] == itl and cost["slope_ms_per_token"] == slope
    if slope > 0:
        assert cost["ratio"] == itl / slope
        text = box.locator(".live").inner_text()
        assert f"One decode step took {ms(itl)}" in text and f"added {fixed(slope, 3)} ms" in text, text
        assert f"cost {fixed(itl / slope, 0)}× a prompt token" in text, text
        expect(box.locator(".verdict")).to_contain_text("Measured:")
    else:
        expect(box.locator(".live")).to_contain_text("did not rise here")

    # 3: a long answer against a long prompt, both streamed from the server.
    page.locator("#step-answer_vs_prompt input[value='1']").check()
    box = reveal(page, "answer_vs_prompt")
    expect(box.locator(".chart-answer-vs-prompt .bar-row")).to_have_count(2, timeout=MODEL_WORK)
    expect_server_source(box, server.model, "shape", server.root)
    answer = kept("answer_vs_prompt")
    la, lp = answer["long_answer"], answer["long_prompt"]
    assert answer["on"] == "server" and answer["tokens"] == SMALL_VLLM["answer_tokens"]
    text = box.locator(".live").inner_text()
    for part in (
        f"The {answer['tokens']}-token prompt with a one-token answer took {ms(lp['ms'])}",
        f"answer took {fixed(la['ms'] / 1000, 1)} s: first token after {ms(la['first_ms'])}",
        f"{fixed(answer['ratio'], 1)}× as long",
    ):
        assert part in text, (part, text)

    # 4: the server's top-1 at every prompt position, against the test's own prompt_logprobs call.
    page.locator("#step-positions input[value='1']").check()
    box = reveal(page, "positions")
    ids = server.encode(lesson["prompt"])
    rows = box.locator("table.positions tr")
    expect(rows).to_have_count(len(ids) + 1, timeout=MODEL_WORK)
    direct = server.client.call(
        "POST",
        "/v1/completions",
        {"model": server.model, "prompt": ids, "max_tokens": 1, "temperature": 0, "prompt_logprobs": 1},
    )["choices"][0]
    entries = direct["prompt_logprobs"]
    assert entries[0] is None and len(entries) == len(ids)
    tops = [min(e.items(), key=lambda kv: kv[1]["rank"]) for e in entries[1:]]
    positions = kept("prompt_positions")
    assert [row["top1_id"] for row in positions["rows"][:-1]] == [int(t) for t, _ in tops]
    cells = [rows.nth(i + 1).locator("td").nth(2).inner_text() for i in range(len(ids))]
    for i, row in enumerate(positions["rows"]):
        assert cells[i].startswith(json.dumps(row["top1"], ensure_ascii=False) + " "), (i, cells[i], row)
    for i, (_, top) in enumerate(tops):
        if "decoded_token" in top:
            assert cells[i].startswith(json.dumps(top["decoded_token"], ensure_ascii=False) + " "), (i, cells[i], top)
    assert cells[-1].startswith(json.dumps(direct["text"], ensure_ascii=False) + " "), (cells[-1], direct["text"])
    hits = sum(int(t) == nxt for (t, _), nxt in zip(tops, ids[1:]))
    expect(box.locator(".live")).to_contain_text(f"({hits} of {len(ids) - 1} were the prompt's own next token)")
    expect(box.locator(".raw-request pre")).to_contain_text('"prompt_logprobs":1')
    expect_server_source(box, server.model, "exact", server.root)

    # 5: attention memory needs one layer's tensors: run in this process beside the server, and said so.
    box = page.locator("#step-attention_memory")
    box.locator(".estimate-number").fill("1000000000")
    box = reveal(page, "attention_memory")
    expect(box.locator(".chart-attention svg path.series")).to_have_count(2, timeout=MODEL_WORK)
    expect(box.locator(".live")).to_contain_text("At 8,192 tokens, projected")
    expect(box.locator(".live")).to_contain_text("this process's high-water mark")
    source = box.locator(".source").first
    expect(source).to_contain_text("tokenloop embedded")
    expect(source).to_contain_text(f"model {smol.model}")
    expect(source).to_contain_text("in this process")
    assert "vLLM" not in source.inner_text()
    memory = kept("attention_memory")
    assert [p["tokens"] for p in memory["points"]] == SMALL_VLLM["attention_lens"]
    assert memory["heads"] == smol.config.num_attention_heads

    # 6: each request's client TTFT = queue + server TTFT + the rest, the server's parts its own.
    page.locator("#step-ttft_account input[value='1']").check()
    box = reveal(page, "ttft_account")
    expect(box.locator(".chart-ttft-split .bar-row")).to_have_count(3, timeout=MODEL_WORK)
    expect_server_source(box, server.model, "shape", server.root)
    ttft = kept("ttft_account")
    acc = ttft["account"]
    assert ttft["on"] == "server" and acc["source"] == "vLLM per-request metrics" and acc["requests"] == 3
    expect(box.locator(".live")).to_contain_text("the server's own account (vLLM per-request metrics)")
    table = box.locator("table.ttft-account tr")
    expect(table).to_have_count(len(acc["per_request"]) + 1)
    for i, p in enumerate(acc["per_request"]):
        assert p["server_ttft_ms"] > 0 and p["queue_ms"] is not None and p["queue_ms"] >= 0
        assert abs(p["client_ttft_ms"] - (p["queue_ms"] + p["server_ttft_ms"] + p["rest_ms"])) < 1e-6
        shown = [table.nth(i + 1).locator("td").nth(j).inner_text() for j in range(5)]
        assert shown == [str(i + 1)] + [ms(p[k]) for k in ("client_ttft_ms", "queue_ms", "server_ttft_ms", "rest_ms")]
    right = ttft["largest"] == "server_ttft_ms"
    expect(box.locator(".verdict")).to_have_class(re.compile("right" if right else "wrong"))
    # The test's own streamed request of the same prompt, new to the cache: vLLM's own account of it.
    direct = send(server, ttft["request"]["body"]["prompt"], 1, dialects.uncached_fields(server.dialect, "l3-browser"))
    assert direct.metrics["time_to_first_token_ms"] > 0 and "queue_time_ms" in direct.metrics
    median = acc["stats"]["server_ttft_ms"]["median"]
    assert median / 10 < direct.metrics["time_to_first_token_ms"] < median * 10, (median, direct.metrics)
    shot(page, "lesson3-vllm.png")
