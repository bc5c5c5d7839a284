"""Lesson 8 in a real browser (web/static/live_prefix.js): every step guessed and revealed, on the
embedded model (a prefix cache kept in blocks, in this process) and on real vLLMs the test starts
(`vllm_url` for steps 1-4 and 6, the small-cache `vllm_small_cache_url` for step 5's eviction, with
its plan and consent), and the lab's note after a branch on vLLM (its cached_tokens). Each reveal's counts are checked against a direct computation or a direct
request the test makes itself, the block size against the server's raw /metrics text.

Modules (src/tokenloop/): web/live_prefix.py, web/routes/lesson08.py."""

from __future__ import annotations

import json
import math
import re

import httpx
import pytest
from support.browser import MODEL_WORK, open_page, reveal, shot, shown_source
from support.launcher import app_serving

from tokenloop.cost import kv_causal, prefix_blocks
from tokenloop.cost.prefix_blocks import predicted
from tokenloop.lessons import content
from tokenloop.web import create_app

SMALL = {"grow_tokens_local": 40, "teacher_max_new": 6}
LONG = 240  # the in-process prompt (prefix_len_local's default)


@pytest.fixture(scope="module")
def embedded_app(smol):
    with app_serving(create_app(smol, demo=SMALL)) as url:
        yield url


def expect_source(box, words: tuple[str, ...], tag: str):
    shown_source(box, *words, tag=tag)


def guess_all(page):
    """A guess for every step, as a learner makes them."""
    page.locator("#step-growth input[name='curve-growth-0'][value='staircase']").check()
    page.locator("#step-repeat .estimate-number").fill("3")
    page.locator("#step-two_blocks input[value='0']").check()  # the likely wrong guess
    page.locator("#step-one_word input[value='1']").check()
    page.locator("#step-survival input[value='2']").check()
    page.locator("#step-side_channel input[value='1']").check()


def test_lesson8_on_the_embedded_model(page, embedded_app, smol):  # noqa: F811  (page: a fixture)
    from playwright.sync_api import expect

    lesson = content.load("day08")
    open_page(page, f"{embedded_app}/?lesson=day08")
    expect(page.locator("#title")).to_have_text(lesson["title"])
    expect(page.locator("#course-map .map-part-here")).to_contain_text("pages that requests share")
    guess_all(page)
    here = ("tokenloop embedded", smol.model, "in this process")
    model, block = kv_causal.scratch_model(smol.model_dir), prefix_blocks.BLOCK

    # 1: blocks of 16 handed out one at a time as the answer grows.
    box = reveal(page, "growth")
    expect(box.locator(".chart-growth svg path.series")).to_have_count(1, timeout=MODEL_WORK)
    expect(box.locator(".verdict.right")).to_have_count(1)
    summary = box.locator(".growth-summary")
    expect(summary).to_have_attribute("data-last-blocks", str(math.ceil((8 + SMALL["grow_tokens_local"]) / block)))
    expect(summary).to_contain_text(
        f"counted from its measured length as a paged cache would hand them out (⌈length ÷ {block}⌉)"
    )
    expect_source(box, here, "exact")

    # 2: the same prompt twice: the test's own run of it gives the same cached count.
    box = reveal(page, "repeat")
    expect(box.locator(".chart-repeat .bar-row")).to_have_count(2, timeout=MODEL_WORK)
    own = prefix_blocks.repeat(model, smol.encode, LONG, block)
    assert own["second"]["cached_tokens"] == predicted(LONG, block) == 224
    expect(box.locator(".live")).to_contain_text(f"The second had {own['second']['cached_tokens']} of {LONG} tokens")
    expect(box.locator(".note").first).to_contain_text("differ from the first's by at most 0")
    expect(box.locator(".verdict")).to_contain_text("Measured:")
    expect_source(box, here, "shape")

    # 3: two blocks reuse one; one token more reuses both (the test's own sends).
    box = reveal(page, "two_blocks")
    rows = box.locator("table.two-blocks tr")
    expect(rows).to_have_count(3, timeout=MODEL_WORK)
    for i, n in enumerate((2 * block, 2 * block + 1)):
        own = prefix_blocks.twice(model, smol.encode, n, block)
        assert rows.nth(i + 1).locator("td").nth(1).inner_text() == str(own["cached_tokens"])
    expect(box.locator(".verdict.wrong")).to_contain_text("One block")
    expect_source(box, here, "exact")

    # 4: the first token changed shares nothing; one near the end shares every block before it.
    box = reveal(page, "one_word")
    expect(box.locator("table.one-word tr")).to_have_count(3, timeout=MODEL_WORK)
    own = prefix_blocks.one_word(model, smol.encode, LONG, block)
    for row in own["rows"]:
        cls = row["change"].replace(" ", "-")
        expect(box.locator(f"tr.change-{cls} td").nth(1)).to_have_text(f"{row['cached_tokens']} of {LONG}")
    assert [r["cached_tokens"] for r in own["rows"]] == [0, 224]
    expect(box.locator(".verdict.right")).to_have_count(1)
    expect_source(box, here, "exact")

    # 5: in process, no consent needed: the prefix fades as other prompts fill a 17-block cache.
    box = reveal(page, "survival")
    expect(box.locator(".chart-survival svg path.series")).to_have_count(1, timeout=MODEL_WORK)
    own = prefix_blocks.survival(model, smol.encode, 120, block, 17)
    cells = box.locator("table.survival tr td:nth-child(2)")
    expect(cells).to_have_text([f"{r['cached_tokens']} of {own['most']}" for r in own["rounds"]])
    expect_source(box, here, "exact")

    # 6 (security): the probe of the victim's prompt hits the cache; with salts it does not.
    box = reveal(page, "side_channel")
    expect(box.locator("table.side-channel tr")).to_have_count(5, timeout=MODEL_WORK)
    own = prefix_blocks.side_channel(model, smol.encode, LONG, block)
    for cls, r in (
        ("probe-same", own["shared"]["probe_same"]),
        ("probe-other", own["shared"]["probe_other"]),
        ("salted-probe", own["salted"]["probe_same"]),
        ("salted-owner", own["salted"]["owner_again"]),
    ):
        expect(box.locator(f"tr.{cls} td").nth(1)).to_have_text(f"{r['cached_tokens']} of {LONG}")
    expect(box.locator(".live")).to_contain_text("A security lesson")
    expect_source(box, here, "shape")
    shot(page, "lesson8-embedded.png")

    # Lesson 7's page links its "pages" box here.
    open_page(page, f"{embedded_app}/?lesson=day07")
    expect(page.locator("#course-map a[href='/?lesson=day08']")).to_have_count(1)


# --- on real vLLMs -----------------------------------------------------------------------------
VLLM = {"prefix_len": 940, "grow_tokens": 300, "teacher_max_new": 6}


def metrics_labels(root: str) -> dict:
    """vllm:cache_config_info's labels, read from the raw /metrics text by this test."""
    line = next(x for x in httpx.get(f"{root}/metrics").text.splitlines() if x.startswith("vllm:cache_config_info{"))
    return dict(re.findall(r'(\w+)="([^"]*)"', line))


def cached(server, ids: list[int], salt: str | None = None) -> int:
    """One completion this test sends, and the prompt tokens the server says it took from its cache."""
    body = {"model": server.model, "prompt": ids, "max_tokens": 1, **({"cache_salt": salt} if salt else {})}
    answer = httpx.post(f"{server.root}/v1/completions", json=body, timeout=120).json()
    return answer["usage"]["prompt_tokens_details"]["cached_tokens"]


def served_app(smol, url):
    from tokenloop.backends.server import ServerBackend

    server = ServerBackend(url, log=lambda message: None)
    return server, create_app(server, compare=smol, server_url=server.root, demo=VLLM)


def test_lesson8_on_a_real_vllm(page, smol, vllm_url):  # noqa: F811  (page: a fixture)
    from playwright.sync_api import expect

    server, app = served_app(smol, vllm_url)
    labels = metrics_labels(server.root)
    block, blocks = int(labels["block_size"]), int(labels["num_gpu_blocks"])
    assert labels["enable_prefix_caching"] == "True"  # vLLM V1's default
    there = ("vLLM", server.model, server.root)
    with app_serving(app) as url:
        open_page(page, f"{url}/?lesson=day08")
        guess_all(page)

        def kept(key: str) -> dict:
            return page.request.get(f"{url}/api/live/kept?lesson=day08").json()["results"][key]

        # 1: the usage gauge, counted in the server's own blocks.
        box = reveal(page, "growth")
        expect(box.locator(".chart-growth svg path.series")).to_have_count(1, timeout=MODEL_WORK)
        r = kept("prefix_growth")
        last = math.ceil((r["prompt_tokens"] + VLLM["grow_tokens"]) / block)
        expect(box.locator(".growth-summary")).to_have_attribute("data-last-blocks", str(last))
        expect(box.locator(".growth-summary")).to_contain_text(f"Its cache is {blocks:,} blocks of {block} tokens")
        assert [j["blocks"] for j in r["jumps"]] == list(range(r["first_blocks"] + 1, last + 1))
        expect_source(box, there, "exact")

        # 2: the same 940-token prompt twice; the test's own two sends give the same cached count.
        box = reveal(page, "repeat")
        expect(box.locator(".chart-repeat .bar-row")).to_have_count(2, timeout=MODEL_WORK)
        r = kept("prefix_repeat")
        ids, salt = server.encode("tokenloop test " + "pods and nodes " * 400)[:940], prefix_blocks.fresh()
        own = [cached(server, ids, salt) for _ in range(2)]
        assert own == [0, r["second"]["cached_tokens"]] and own[1] == predicted(940, block)
        expect(box.locator(".live")).to_contain_text(f"The second had {own[1]} of 940 tokens")
        if r["alone"]:
            assert r["delta_hits"] == own[1] and r["delta_queries"] == 940
        expect(box.locator(".raw-request pre")).to_contain_text('"cache_salt"')
        expect_source(box, there, "shape")

        # 3: exactly two of the server's blocks.
        box = reveal(page, "two_blocks")
        expect(box.locator("table.two-blocks tr")).to_have_count(3, timeout=MODEL_WORK)
        for i, n in enumerate((2 * block, 2 * block + 1)):
            salt = prefix_blocks.fresh()
            own = [cached(server, ids[:n], salt) for _ in range(2)][1]
            expect(box.locator("table.two-blocks tr").nth(i + 1).locator("td").nth(1)).to_have_text(str(own))
        expect(box.locator(".verdict.wrong")).to_contain_text("One block")
        expect_source(box, there, "exact")

        # 4: the first token changed, or one near the end (the test's own variants of its prompt).
        box = reveal(page, "one_word")
        expect(box.locator("table.one-word tr")).to_have_count(3, timeout=MODEL_WORK)
        salt = prefix_blocks.fresh()
        cached(server, ids, salt)
        for name, position in (("first", 0), ("near-the-end", 932)):
            own = cached(server, prefix_blocks.changed(ids, position), salt)
            expect(box.locator(f"tr.change-{name} td").nth(1)).to_have_text(f"{own} of 940")
        expect_source(box, there, "exact")

        # 6 (security): the test probes its own victim prompt, without and with salts.
        box = reveal(page, "side_channel")
        expect(box.locator("table.side-channel tr")).to_have_count(5, timeout=MODEL_WORK)
        victim = server.encode("victim " + prefix_blocks.fresh() + " pods and nodes " * 400)[:940]
        cached(server, victim)
        probe, salted = cached(server, victim), cached(server, victim, "tenant-b")
        expect(box.locator("tr.probe-same td").nth(1)).to_have_text(f"{probe} of 940")
        expect(box.locator("tr.salted-probe td").nth(1)).to_have_text(f"{salted} of 940")
        assert (probe, salted) == (predicted(940, block), 0)
        expect(box.locator(".live")).to_contain_text("A security lesson")
        expect_source(box, there, "shape")
        shot(page, "lesson8-vllm.png")

        # "Copy this lesson for your AI": the numbers this page drew, not measured again.
        copied = page.request.post(f"{url}/api/lesson/markdown", data={"lesson": "day08"}).json()["markdown"]
        r = kept("prefix_repeat")
        assert f"the second had {r['second']['cached_tokens']} of its 940 tokens" in copied
        assert f"then {r['second']['ms']:.1f} ms" in copied  # the very run drawn on the page
        assert f"| {2 * block} | {block} | {block} |" in copied


def test_lesson8_eviction_on_a_small_cache_with_consent(page, smol, vllm_small_cache_url):  # noqa: F811
    from playwright.sync_api import expect

    server, app = served_app(smol, vllm_small_cache_url)
    labels = metrics_labels(server.root)
    size = int(labels["num_gpu_blocks"]) * int(labels["block_size"])
    with app_serving(app) as url:
        open_page(page, f"{url}/?lesson=day08")
        page.locator("#step-survival input[value='2']").check()
        box = reveal(page, "survival")
        plan = box.locator(".consent-plan")
        expect(plan).to_contain_text(f"the cache's {size:,} tokens", timeout=MODEL_WORK)  # nothing sent yet
        box.locator(".consent-start").click()
        expect(box.locator(".chart-survival svg path.series")).to_have_count(1, timeout=2 * MODEL_WORK)
        r = page.request.get(f"{url}/api/live/kept?lesson=day08").json()["results"]["prefix_survival"]
        counts = [x["cached_tokens"] for x in r["rounds_done"]]
        assert r["stopped"] is None and r["healthy_after"] and counts[-1] < counts[0]
        cells = box.locator("table.survival tr td:nth-child(2)")
        expect(cells).to_have_text([f"{c} of {predicted(940, int(labels['block_size']))}" for c in counts])
        expect_source(box, ("vLLM", server.model, server.root), "exact")
        # The test's own first round: the prefix, one other 900-token prompt, the prefix again.
        ids, salt = server.encode("survivor " + prefix_blocks.fresh() + " pods and nodes " * 400)[:940], "own"
        cached(server, ids, salt)
        cached(server, server.encode(prefix_blocks.fresh() + " pods and nodes " * 400)[:900], salt)
        assert cached(server, ids, salt) == counts[0]
        shot(page, "lesson8-eviction.png")


def test_a_lab_branch_on_vllm_shows_what_the_server_took_from_its_cache(page, smol, vllm_url):  # noqa: F811
    """The lab on the server: step three times, branch at step 2, step again; the note says how many
    of that step's prompt tokens vLLM served from its cache, the same count a request of the same
    ids by this test gets."""
    from playwright.sync_api import expect

    server, app = served_app(smol, vllm_url)
    prompt = "Kubernetes schedules pods onto nodes. " + prefix_blocks.fresh() + " The scheduler scores nodes. " * 40
    with app_serving(app) as url:
        open_page(page, f"{url}/lab")
        page.locator("#prompt").fill(prompt)
        tokens = page.locator("#text .tok.gen")
        for i in range(3):
            page.locator("#step").click()
            expect(tokens).to_have_count(i + 1, timeout=MODEL_WORK)
        tokens.nth(1).click()
        expect(page.locator("#dist-title")).to_contain_text("step 2")
        page.locator("#raw-bars .bar-row").nth(1).click()
        expect(tokens).to_have_count(2)
        page.locator("#step").click()
        expect(tokens).to_have_count(3, timeout=MODEL_WORK)
        steps = [json.loads(x) for x in page.request.get(f"{url}/api/lab/export").text().splitlines()]
        ids = steps[0]["prompt_ids"] + [s["chosen"]["id"] for s in steps[1:3]]
        after = steps[3]["extra"]
        assert after["prompt_tokens"] == len(ids) and after["cached_tokens"] > 0
        assert (
            cached(server, ids)
            == after["cached_tokens"]
            == (len(ids) - 1)
            // int(metrics_labels(server.root)["block_size"])
            * int(metrics_labels(server.root)["block_size"])
        )
        expect(page.locator("#cached")).to_contain_text(
            f"Step 3, the first after your branch at step 2: the server took {after['cached_tokens']:,} of its {len(ids):,}"
        )
        shot(page, "lesson8-lab-branch.png")
