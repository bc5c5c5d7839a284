"""Plugin: a real browser for the tests, headless Debian chromium driven by Playwright, and the app
it opens, served by uvicorn on 127.0.0.1 with the real embedded model.

Chromium comes from Debian (`make browser`), never from a test tool's own download. Where it is
missing the browser tests skip, except under TOKENLOOP_REQUIRE_BROWSER=1 (set by `make test`),
where they fail. Every `page` checks on leaving that no script error happened and that no dialog
opened (nothing a model or a prompt wrote ever ran). `shot` saves screenshots to test-artifacts/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from support.launcher import app_serving

REQUIRE = os.environ.get("TOKENLOOP_REQUIRE_BROWSER") == "1"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SMALL = {"steps": 2, "max_len": 16, "points": 2, "repeats": 1, "teacher_max_new": 6}
MODEL_WORK = 120_000  # ms to wait for anything the model computes on a busy 2-core machine


def unavailable(message: str):
    if REQUIRE:
        pytest.fail(f"{message} (TOKENLOOP_REQUIRE_BROWSER=1; install it with `make browser`)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def served(smol):
    """The app on the real model (small demos: SMALL) on a free 127.0.0.1 port, in a thread of this process."""
    from tokenloop.web import create_app

    with app_serving(create_app(smol, demo=SMALL)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh browser profile (no cookies, no saved progress) per test."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.errors, page.dialogs = [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    assert not page.errors, page.errors  # no script error on any page, ever
    assert not page.dialogs, page.dialogs  # nothing a model or a prompt wrote ever ran
    context.close()


def open_page(page, url: str):
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)


def shot(target, name: str) -> None:
    """A screenshot of a page (all of it) or of one element, into test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    full = {"full_page": True} if hasattr(target, "goto") else {}
    target.screenshot(path=str(ARTIFACTS / name), **full)


MEASURING = re.compile(r"/api/(live/(?!kept|stop)[a-z_]+|training|staircase|server-staircase)(\?|$)")


def measuring_requests(page) -> list[str]:
    """The page's requests that measure something (POSTs to the live, training and staircase
    routes), collected from now on: a reload that draws kept numbers sends none."""
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" and MEASURING.search(r.url) else None)
    return sent


def reveal(tab, step_id: str):
    """Press a lesson step's reveal button (after its guess) and hand back the step's box."""
    box = tab.locator(f"#step-{step_id}")
    box.locator(".reveal").click()
    return box


def shown_source(box, *words: str, tag: str | None = None, version: bool = True):
    """A reveal's source line, once visible: it holds each of `words`, the honesty tag and (unless
    `version` is False) a version number. Returns the line's locator."""
    from playwright.sync_api import expect

    source = box.locator(".source").first
    expect(source).to_be_visible(timeout=MODEL_WORK)
    text = source.inner_text()
    assert all(w in text for w in words) and (tag is None or f"honesty: {tag}" in text), text
    assert not version or re.search(r"\d+\.\d+", text), f"no version in {text!r}"
    return source


def expect_server_source(box, model: str, tag: str, root: str):
    """A reveal's source line names vLLM, its version, the model, the server's address and the tag."""
    text = shown_source(box, "vLLM", model, root, tag=tag).inner_text()
    assert "tokenloop embedded" not in text, text
