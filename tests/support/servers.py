"""Plugin: the real servers as session fixtures, each shared by every test that names it (tests
must not stop or kill them; a test that needs to hurt a server starts its own with
`support.real_servers.llama_server`).

vLLM takes about a minute to start: right after collection (`pytest_collection_finish`) the ones
the selected tests ask for are launched, so they warm up while the tests before them run; its
fixture then only waits until it answers. They stop when the session finishes. The tests that run
llama.cpp in some process (mark `llamacpp`, or the llama-cpp-python server) go last, after they start.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from support.launcher import ServerProcess
from support.real_servers import VLLM_PYTHON, VLLM_SERVERS, llama_python_server, llama_server, missing, vllm_server

_vllm_launched: dict[str, ServerProcess] = {}


def launch_vllm_early(names: set[str]) -> None:
    """Start the vLLM servers these tests will ask for, without waiting (called after collection)."""
    if not VLLM_PYTHON.is_file():
        return
    for name in sorted(names & set(VLLM_SERVERS)):
        if name not in _vllm_launched:
            _vllm_launched[name] = vllm_server(name, Path(tempfile.mkdtemp(prefix="tokenloop-vllm-"))).start()


def stop_vllm() -> None:
    for served in _vllm_launched.values():
        served.stop()
    _vllm_launched.clear()


def pytest_collection_finish(session):
    wanted = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    if wanted & set(VLLM_SERVERS):
        launch_vllm_early(wanted)


# llama.cpp's workers busy-wait for each other; beside the vLLM servers' start (a minute of both
# cores) the llama-cpp-python tests took 195 s instead of 9, and llama-server's 75 s instead of 15.
# They run after everything else.
SPINS = {"llama_python_url", "llama_url"}


def pytest_collection_modifyitems(session, config, items):
    """Whole modules move (a module's other tests may start their own llama-server, and its
    fixtures are made once)."""
    if not {name for item in items for name in item.fixturenames} & set(VLLM_SERVERS):
        return
    spinning = {
        item.module.__name__
        for item in items
        if item.get_closest_marker("llamacpp") is not None or SPINS & set(item.fixturenames)
    }
    items.sort(key=lambda item: item.module.__name__ in spinning)  # stable: the order is kept within each part


def pytest_sessionfinish(session, exitstatus):
    stop_vllm()


def _vllm(name: str) -> str:
    if not VLLM_PYTHON.is_file():
        missing(f"vLLM's CPU build is not installed ({VLLM_PYTHON} is missing)")
    launch_vllm_early({name})
    _vllm_launched[name].wait_ready()
    return _vllm_launched[name].url


@pytest.fixture(scope="session")
def llama_url(tmp_path_factory):
    """The shared llama-server's base URL (tests must not stop or kill it)."""
    with llama_server(tmp_path_factory.mktemp("llama-server")) as served:
        yield served.url


@pytest.fixture(scope="session")
def llama_python_url(tmp_path_factory):
    """The shared llama-cpp-python server's base URL."""
    with llama_python_server(tmp_path_factory.mktemp("llama-cpp-python")) as served:
        yield served.url


@pytest.fixture(scope="session")
def vllm_url():
    """The shared vLLM's base URL: raw logprobs, the default cap of 20."""
    return _vllm("vllm_url")


@pytest.fixture(scope="session")
def vllm_processed_url():
    """A second vLLM: --logprobs-mode processed_logprobs --max-logprobs 5."""
    return _vllm("vllm_processed_url")


@pytest.fixture(scope="session")
def vllm_small_cache_url():
    """A third vLLM, with a KV cache of 2,176 tokens: Lesson 7's fill preempts on it."""
    return _vllm("vllm_small_cache_url")
