"""The lab's sampler in a real browser (web/static/lab.js): the raw distribution and the one after
the sampler side by side for a sampler setting, each bar checked against `sampling.py` applied
here to the same model's logits, and the seed box reproducing a draw (same seed, same tokens;
the first draw of each seed the one `sampling.pick` makes here with that seed)."""

from __future__ import annotations

import pytest
from support.browser import MODEL_WORK, open_page, shot

from tokenloop import sampling
from tokenloop.sampling import Sampler

PROMPT = "Kubernetes pods are scheduled by the"
SETTING = Sampler(1.5, top_p=0.9)


def settings(page, seed: str) -> None:
    page.locator("#prompt").fill(PROMPT)
    page.locator("#temperature").fill(str(SETTING.temperature))
    page.locator("#top-p").fill(str(SETTING.top_p))
    page.locator("#seed").fill(seed)


def three_steps(page) -> list[str]:
    """Start a new run (the seed starts over with it), then Step three times: the tokens' ids."""
    from playwright.sync_api import expect

    with page.expect_response("**/api/lab/start", timeout=MODEL_WORK):
        page.locator("#start").click()
    tokens = page.locator("#text .tok.gen")
    expect(tokens).to_have_count(0, timeout=MODEL_WORK)
    for n in range(1, 4):
        page.locator("#step").click()
        expect(tokens).to_have_count(n, timeout=MODEL_WORK)
    return [
        page.request.get(page.url.split("/lab")[0] + "/api/lab").json()["steps"][i]["chosen"]["id"] for i in range(3)
    ]


def test_raw_and_processed_bars_side_by_side_and_a_seed_repeats_the_draw(page, served, smol):  # noqa: F811
    from playwright.sync_api import expect

    open_page(page, f"{served}/lab")
    settings(page, "7")
    first = three_steps(page)

    # Step 1's bars: the raw softmax and softmax(logits / 1.5) after top_p 0.9, from the test's own forward.
    page.locator("#text .tok.gen").first.click()
    expect(page.locator("#dist-title")).to_contain_text("step 1")
    x = smol.forward(smol.encode(PROMPT), smol.new_cache()).values.float()  # as the lab's step 1: a fresh cache
    raw, shaped = sampling.distribution(x), sampling.process(x, SETTING)
    expect(page.locator("#processed-bars .bars-label")).to_have_text("After the sampler (T=1.5 top_p=0.9)")
    for side, probs in (("#raw-bars", raw), ("#processed-bars", shaped)):
        rows = page.locator(f"{side} .bar-row")
        expect(rows).to_have_count(8)
        for i in range(8):
            token_id, prob = int(rows.nth(i).get_attribute("data-id")), float(rows.nth(i).get_attribute("data-prob"))
            # float32 either way: the lab's logits minus their log-normaliser, here torch's softmax
            assert prob == pytest.approx(float(probs[token_id]), rel=1e-4), (side, i, token_id)
    top = int(page.locator("#raw-bars .bar-row").first.get_attribute("data-id"))
    shown_raw = float(page.locator("#raw-bars .bar-row").first.get_attribute("data-prob"))
    shown_after = float(page.locator(f"#processed-bars .bar-row[data-id='{top}']").get_attribute("data-prob"))
    assert shown_after < shown_raw  # T 1.5 flattened the favourite even after top_p renormalised
    assert first[0] == sampling.pick(x, SETTING, sampling.make_generator(7))[0]  # seed 7's first draw, made here
    shot(page, "lab-sampler.png")

    # The same seed again: the same three tokens. Another seed: its own first draw.
    assert three_steps(page) == first
    settings(page, "8")
    again = three_steps(page)
    assert again[0] == sampling.pick(x, SETTING, sampling.make_generator(8))[0]
    settings(page, "7")
    assert three_steps(page) == first


def test_on_a_processed_vllm_the_bars_after_the_sampler_are_the_servers_and_its_seed_repeats(
    page,
    vllm_processed_url,  # noqa: F811
):
    """--logprobs-mode processed_logprobs: a sampled lab step is drawn by the server with the seed
    box's seed (seed + step, as `picks.ByServer` sends it); its post-sampler logprobs are the bars
    after the sampler, a greedy call's the raw bars beside them, each checked against the test's own
    calls; the same seed draws the same tokens again."""
    import math

    from playwright.sync_api import expect
    from support.launcher import app_serving
    from support.vllm_direct import completion

    from tokenloop.backends.server import ServerBackend
    from tokenloop.web import create_app

    server = ServerBackend(vllm_processed_url, log=lambda message: None)
    with app_serving(create_app(server, server_url=server.root)) as url:
        open_page(page, f"{url}/lab")
        settings(page, "7")
        first = three_steps(page)
        page.locator("#text .tok.gen").first.click()
        expect(page.locator("#processed-bars .bars-label")).to_contain_text("by the server, its processed logprobs")
        before = completion(vllm_processed_url, server.model, PROMPT, temperature=0, logprobs=5)
        after = completion(vllm_processed_url, server.model, PROMPT, temperature=1.5, top_p=0.9, seed=8, logprobs=5)
        assert first[0] == after["pick"]
        for side, asked in (("#raw-bars", before), ("#processed-bars", after)):
            rows = page.locator(f"{side} .bar-row")
            shown = [lp for lp in asked["top"].values() if lp > -9999]  # the top 5, and the pick where it is below them
            expect(rows).to_have_count(len(shown))
            for i in range(len(shown)):
                token_id, prob = (
                    int(rows.nth(i).get_attribute("data-id")),
                    float(rows.nth(i).get_attribute("data-prob")),
                )
                assert prob == pytest.approx(math.exp(asked["top"][token_id]), abs=2e-3), (side, i, token_id)
        assert float(page.locator("#raw-bars .bar-row").first.get_attribute("data-prob")) != pytest.approx(
            float(page.locator("#processed-bars .bar-row").first.get_attribute("data-prob")), abs=1e-3
        )  # side by side, and not the same numbers: T 1.5 and top_p 0.9 reshaped them
        shot(page, "lab-sampler-vllm-processed.png")
        assert three_steps(page) == first
