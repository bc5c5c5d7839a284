"""The tests' root: shared fixtures come from plugins in tests/support/ (listed below; see
support/__init__.py for what each holds), helpers are imported from there as plain modules.

The tests keep their model cache (TOKENLOOP_CACHE: the converted model, its ONNX graphs, packed
weights) in `test-models` of the per-user build cache (scripts/test_peers.py's `cache_root()`),
never in the user's ~/.cache/tokenloop: every clone on the machine finds them made, as it finds
the servers built. Markers are set from the fixtures a test uses: `model` (the real embedded
model), `server` (a real server process), `browser` (Chromium). A plain `pytest` runs only the
quick tests; `make test` runs every one (`-m ""`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_cache() -> Path:
    """The per-user build cache: the same rule as scripts/test_peers.py's cache_root() (a test checks)."""
    if os.environ.get("TOKENLOOP_BUILD_CACHE"):
        return Path(os.environ["TOKENLOOP_BUILD_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tokenloop" / "builds"


os.environ.setdefault("TOKENLOOP_CACHE", str(build_cache() / "test-models"))

# tests/ is on sys.path (pyproject's `pythonpath`), so `support` imports from every folder.
pytest.register_assert_rewrite("support")
pytest_plugins = ["support.models", "support.servers", "support.browser"]

MARKS = {
    "model": {"smol", "served", "vllm_url", "vllm_processed_url", "vllm_small_cache_url"},
    "server": {"llama_url", "llama_python_url", "vllm_url", "vllm_processed_url", "vllm_small_cache_url"},
    "browser": {"page", "browser"},
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these marks
def pytest_collection_modifyitems(session, config, items):
    """Mark each test by what it needs."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for mark, fixtures in MARKS.items():
            if used & fixtures:
                item.add_marker(mark)
