"""The per-user build cache (scripts/test_peers.py): the tests look for their model cache in the
same folder that `make test-servers` builds in, and both follow TOKENLOOP_BUILD_CACHE and
XDG_CACHE_HOME."""

import importlib.util
from pathlib import Path

import pytest
from conftest import build_cache

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def test_peers(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # as when it runs: its own folder on the path
    spec = importlib.util.spec_from_file_location("test_peers", ROOT / "scripts" / "test_peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("setting", ["TOKENLOOP_BUILD_CACHE", "XDG_CACHE_HOME", "HOME"])
def test_the_tests_and_the_build_agree_on_the_cache(test_peers, monkeypatch, tmp_path, setting):
    for name in ("TOKENLOOP_BUILD_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(setting, str(tmp_path / setting))
    assert build_cache() == test_peers.cache_root()
    assert str(tmp_path / setting) in str(build_cache())
