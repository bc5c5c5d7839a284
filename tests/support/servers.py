"""Plugin: the real servers as session fixtures, each shared by every test that names it (tests
must not stop or kill them; a test that needs to hurt a server starts its own with
`support.real_servers.llama_server`).

vLLM takes about half a minute to start: right after collection (`pytest_collection_finish`) the
ones the selected tests ask for are launched from a thread (which first waits, under `make test`,
for the background install of vLLM's venv), all at once, so they warm up while the tests before
them run (those that never run the model come first); its fixture then only waits until it answers.
They stop when the session finishes. (One at a time, they took longer to start, and the model's
tests beside them ran twice as long.)

The order: first the tests that need no server, then those that run llama.cpp in some process
(mark `llamacpp`, or a llama-cpp-python or llama-server fixture), whose build under `make test`
may still be finishing at idle priority, and last those on vLLM, which never run beside that
compiler (beside it, even at idle priority, a vLLM request took 2.6 times as long).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from support.launcher import ServerProcess
from support.real_servers import VLLM_SERVERS, built, llama_python_server, llama_server, missing, vllm_server
from tokenloop.errors import ModelError
from tokenloop.model.files import resolve

_vllm_launched: dict[str, ServerProcess] = {}
_vllm_missing: dict[str, str] = {}
_launching: list[threading.Thread] = []
_logs: list[Path] = []  # each vLLM's log folder, removed when it stops (its end is in any failure's message)


def launch_vllm_early(names: set[str]) -> None:
    """Start the vLLM servers these tests will ask for, without waiting (called after collection).
    The model folder and the environment are taken here, in the main thread: the thread that
    launches may wait for vLLM's venv while tests run, and a test may set TOKENLOOP_CACHE, PATH or
    HOME for itself meanwhile."""
    names = sorted(names & set(VLLM_SERVERS) - _vllm_launched.keys() - _vllm_missing.keys())
    if not names:
        return
    for name in names:
        _vllm_missing[name] = "vLLM is still being launched"  # taken: no second launch
    environ = dict(os.environ)
    try:
        model = resolve()
    except ModelError as error:
        for name in names:
            _vllm_missing[name] = f"vLLM has no model to serve: {error}"
        return

    def launch():
        python = built("vllm_python")
        for name in names:
            if not python.is_file():
                _vllm_missing[name] = f"vLLM's CPU build is not installed ({python} is missing)"
                continue
            _logs.append(Path(tempfile.mkdtemp(prefix="tokenloop-vllm-")))
            try:
                _vllm_launched[name] = vllm_server(name, _logs[-1], python, model, environ).start()
            except (Exception, pytest.fail.Exception) as error:  # shown by the fixture that needs it
                _vllm_missing[name] = f"vLLM did not start: {error}"
                continue
            del _vllm_missing[name]

    _launching.append(threading.Thread(target=launch, daemon=True))
    _launching[-1].start()


def launched() -> dict[str, ServerProcess]:
    """The vLLMs started, once the thread that starts them is done."""
    for thread in list(_launching):
        thread.join()
    return _vllm_launched


def stop_vllm() -> None:
    for served in launched().values():
        served.stop()
    _vllm_launched.clear()
    for folder in _logs:
        shutil.rmtree(folder, ignore_errors=True)
    _logs.clear()


def pytest_collection_finish(session):
    wanted = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    if wanted & set(VLLM_SERVERS):
        launch_vllm_early(wanted)


# llama.cpp's workers busy-wait for each other; beside the vLLM servers' start (a minute of both
# cores) the llama-cpp-python tests took 195 s instead of 9, and llama-server's 75 s instead of 15.
# By the time llama.cpp's part comes (after the tests that need no server) the vLLMs are up and idle;
# where few tests came before it (a run of a few modules), its tests wait until they are.
SPINS = {"llama_python_url", "llama_url"}
_part: dict[str, int] = {}  # module -> 0 no server, 1 llama.cpp, 2 vLLM
_vllm_waited: list[bool] = []  # once llama.cpp's first test has waited for them


def pytest_runtest_setup(item):
    if _part.get(item.module.__name__) == 1 and not _vllm_waited:
        _vllm_waited.append(True)
        for served in list(launched().values()):
            try:
                served.wait_ready()
            except pytest.fail.Exception:  # said again by the fixture of the test that needs it
                pass


def pytest_collection_modifyitems(session, config, items):
    """No server, then llama.cpp, then vLLM; whole modules move (a module's other tests may start
    their own llama-server, and its fixtures are made once). A module on both goes with vLLM.
    Within each part the modules that never run the model come first: the vLLMs start meanwhile
    (beside those starts, the ONNX Runtime module's 16 s took 34; 63 when they started one at a time)."""
    heavy: dict[str, bool] = {}
    for item in items:
        module = item.module.__name__
        on_vllm = set(VLLM_SERVERS) & set(item.fixturenames)
        marked = item.get_closest_marker("llamacpp") or (item.get_closest_marker("server") and not on_vllm)
        spins = marked or SPINS & set(item.fixturenames)  # a real server that isn't vLLM is llama.cpp's
        _part[module] = max(_part.get(module, 0), 2 if on_vllm else 1 if spins else 0)
        heavy[module] = heavy.get(module, False) or item.get_closest_marker("model") is not None
    items.sort(key=lambda item: (_part[item.module.__name__], heavy[item.module.__name__]))  # stable otherwise


def pytest_sessionfinish(session, exitstatus):
    stop_vllm()


def _vllm(name: str) -> str:
    launch_vllm_early({name})  # nothing, if the collection launched it
    launched()
    if name in _vllm_missing:
        missing(_vllm_missing[name])
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
