"""The per-user build cache (scripts/test_peers.py): the tests look for their model cache in the
same folder that `make test-servers` builds in, and both follow TOKENLOOP_BUILD_CACHE and
XDG_CACHE_HOME. And the background worker of `make test`: a test waits for the server it is
making, and a worker that fails leaves its log in the message."""

import importlib.util
import json
import os
import subprocess
import sys
import time
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


# Under `make test` the servers are made by test_peers.py's background worker while the suite runs.
# These stand-in workers are real processes named like it (the tests check the name, so that a
# reused pid is never taken for the worker); the first records through the script's own `record`.
RECORDS_THEN_WORKS_ON = """
import importlib.util, sys, time
from pathlib import Path
sys.path.insert(0, {scripts!r})
spec = importlib.util.spec_from_file_location("test_peers", {script!r})
peers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peers)
peers.POINTER = Path({pointer!r})
time.sleep(1)
peers.record("llama_server", "/built/llama-server")
time.sleep(30)
"""


def worker(tmp_path: Path, code: str) -> subprocess.Popen:
    with open(tmp_path / "test-servers.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-c", code, "test_peers.py", "--worker"], stdout=log, stderr=log)
    (tmp_path / "test-servers.pid").write_text(str(process.pid))
    for _ in range(100):  # until it runs its own command line (before its exec, /proc shows this one's)
        if process.poll() is not None or b"test_peers.py" in Path(f"/proc/{process.pid}/cmdline").read_bytes():
            break
        time.sleep(0.05)
    return process


@pytest.fixture
def servers(monkeypatch, tmp_path):
    """The worker's records in this test's own folder (the clone's build/ is left alone)."""
    from support.real_servers import Worker

    monkeypatch.delenv("TOKENLOOP_LLAMA_SERVER", raising=False)
    return Worker(tmp_path)


def test_a_test_waits_for_a_server_the_background_worker_is_still_making(servers, tmp_path):
    code = RECORDS_THEN_WORKS_ON.format(
        scripts=str(ROOT / "scripts"),
        script=str(ROOT / "scripts" / "test_peers.py"),
        pointer=str(tmp_path / "test-servers.json"),
    )
    process = worker(tmp_path, code)
    try:
        assert servers.alive()
        assert servers.built("llama_server") == Path("/built/llama-server")  # waited for the record
        assert servers.alive()  # taken as soon as it was recorded, not when the worker ended
    finally:
        process.kill()
        process.wait()
    assert not servers.alive()


def test_a_worker_that_fails_leaves_the_server_missing_with_its_log(servers, tmp_path):
    worker(tmp_path, "import sys; print('cmake: no C compiler found'); sys.exit(1)").wait()
    assert not servers.alive()
    assert servers.built("llama_server") == ROOT / "build" / "llama.cpp" / "bin" / "llama-server"  # not there: missing
    assert "cmake: no C compiler found" in servers.log()


def test_a_live_process_that_is_not_the_worker_is_not_waited_for(servers, tmp_path):
    (tmp_path / "test-servers.pid").write_text(str(os.getpid()))  # this pytest: alive, but not test_peers.py
    assert not servers.alive()


def test_records_of_both_servers_are_kept_side_by_side(test_peers, monkeypatch, tmp_path):
    monkeypatch.setattr(test_peers, "POINTER", tmp_path / "test-servers.json")
    test_peers.record("vllm_python", Path("/v/bin/python"))
    test_peers.record("llama_server", Path("/l/bin/llama-server"))
    assert json.loads((tmp_path / "test-servers.json").read_text()) == {
        "vllm_python": "/v/bin/python",
        "llama_server": "/l/bin/llama-server",
    }


def test_the_llama_build_is_keyed_by_what_it_is_made_of_not_by_the_clone(test_peers):
    assert str(ROOT) not in json.dumps(test_peers.llama_stamp())  # a second clone finds the first one's build


def test_a_new_list_of_cold_code_is_a_new_build(test_peers, monkeypatch, tmp_path):
    before = test_peers.key(test_peers.llama_stamp())
    edited = tmp_path / test_peers.COLD_CODE.name
    edited.write_text(test_peers.COLD_CODE.read_text().replace('"^tools/mtmd/"', ""))
    monkeypatch.setattr(test_peers, "COLD_CODE", edited)
    assert test_peers.key(test_peers.llama_stamp()) != before


def test_the_build_shows_its_progress_from_make_or_ninja(test_peers):
    assert test_peers.progress("[ 40%] Building CXX object common/CMakeFiles/arg.cpp.o") == 40
    assert test_peers.progress("[76/190] Building CXX object src/CMakeFiles/llama.dir/llama.cpp.o") == 40
    assert test_peers.progress("-- The C compiler identification is GNU 12.2.0") is None


def test_a_server_that_failed_is_not_waited_for_while_the_worker_goes_on(servers, test_peers, monkeypatch, tmp_path):
    """vLLM's install failed, llama.cpp still builds: the vLLM tests fail now, not after the build."""
    monkeypatch.setattr(test_peers, "POINTER", tmp_path / "test-servers.json")
    process = worker(tmp_path, "import time; print('installing vLLM failed', flush=True); time.sleep(120)")
    for _ in range(100):  # until it has said so
        if (tmp_path / "test-servers.log").read_text():
            break
        time.sleep(0.05)
    try:
        test_peers.record("vllm_python", None)
        assert servers.alive() and servers.settled("vllm_python") and not servers.settled("llama_server")
        assert servers.built("vllm_python") == ROOT / ".venv-vllm" / "bin" / "python"  # not there: missing
        assert servers.alive()  # not waited for: the worker is still at work
        assert "installing vLLM failed" in servers.log()
    finally:
        process.kill()
        process.wait()


def test_a_server_launched_later_keeps_the_environment_it_was_given(monkeypatch, tmp_path):
    """vLLM's launch thread starts the servers while tests run: the environment was taken at
    collection, and a variable a test sets meanwhile (PATH here) doesn't reach them."""
    from support.launcher import ServerProcess

    base = dict(os.environ, TL_KEPT="kept", TL_DROPPED="dropped")
    monkeypatch.setenv("PATH", str(tmp_path))
    show = "import os; print(os.environ.get('TL_KEPT'), os.environ.get('TL_DROPPED'), os.environ['PATH'])"
    served = ServerProcess([sys.executable, "-c", show], "/health", tmp_path, {"TL_DROPPED": None}, base=base)
    served.start().process.wait()
    assert served.log.read_text().split() == ["kept", "None", base["PATH"]]
