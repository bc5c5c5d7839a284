"""llama.cpp builds that run on any CPU, and a build that can't is an error, not a core dump.

The crash test injects the fault: a stand-in `llama_cpp` package that kills its own process with
SIGILL on import, exactly how a build with instructions this CPU can't run dies (compiling a
really broken llama.cpp would take minutes). Everything else is real: the `tokenloop` command in
a fresh process, and the child check it runs before it loads llama.cpp itself.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from support.real_servers import built, need_llamacpp

from tokenloop.backends import llamacpp_build
from tokenloop.backends.llamacpp_build import cmake_args

pytestmark = pytest.mark.llamacpp  # runs after the vLLM servers start (tests/support/servers.py)

SAPPHIRE_RAPIDS = "flags\t\t: fpu sse4_2 avx f16c fma bmi2 avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8 avx_vnni\n"
HASWELL = "flags\t\t: fpu sse4_2 avx f16c fma bmi2 avx2\n"


def options(cpuinfo: str, portable: bool = False) -> dict[str, str]:
    flags = llamacpp_build.cpu_flags(cpuinfo)
    return dict(arg.removeprefix("-D").split("=") for arg in cmake_args(flags, portable=portable))


def test_flags_follow_the_cpu_but_never_native_and_never_amx():
    big = options(SAPPHIRE_RAPIDS)
    assert big["GGML_NATIVE"] == "OFF" and all(big[f"GGML_AMX_{x}"] == "OFF" for x in ("TILE", "INT8", "BF16"))
    assert big["GGML_AVX512"] == big["GGML_AVX512_VNNI"] == big["GGML_AVX512_BF16"] == big["GGML_AVX2"] == "ON"
    assert big["GGML_AVX512_VBMI"] == "OFF"  # not listed by this CPU
    small = options(HASWELL)
    assert small["GGML_AVX2"] == small["GGML_FMA"] == small["GGML_F16C"] == "ON"
    assert small["GGML_AVX512"] == small["GGML_AVX_VNNI"] == "OFF"  # a build here can't fault on AVX-512
    assert set(options("")) == set(big) and set(options("").values()) == {"OFF"}  # no cpuinfo: plain x86-64


def test_the_portable_build_stops_at_avx2_so_it_runs_on_any_recent_x86_cpu():
    big = options(SAPPHIRE_RAPIDS, portable=True)
    assert big == options(HASWELL, portable=True)  # the same build on an AVX-512 Xeon and on a Haswell or a Zen 1
    assert {name for name, on in big.items() if on == "ON"} == set(llamacpp_build.PORTABLE)
    older = options("flags\t\t: fpu sse4_2 avx\n", portable=True)  # below x86-64-v3: only what it has
    assert older["GGML_AVX"] == "ON" and older["GGML_AVX2"] == older["GGML_FMA"] == "OFF"


def test_the_rebuild_command_carries_this_cpus_flags():
    command = llamacpp_build.rebuild_command()
    assert (
        command.startswith('CMAKE_ARGS="-DGGML_NATIVE=OFF')
        and "--no-cache-dir" in command
        and "llama-cpp-python" in command
    )


def run_tokenloop(*args, env=None):
    code = "import sys; from tokenloop.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env)


def test_a_build_that_crashes_on_this_cpu_is_one_line_with_the_fix(tmp_path):
    fake = tmp_path / "site" / "llama_cpp"  # the injected fault: dies like a build with AVX-512 or AMX on a CPU without
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n")
    (fake / "lib").mkdir()
    env = dict(
        os.environ,
        PYTHONPATH=f"{fake.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        TOKENLOOP_CACHE=str(tmp_path / "cache"),
    )
    done = run_tokenloop("run", "The cat", "--engine", "llama.cpp", "--max-new", "2", env=env)
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("tokenloop: this llama-cpp-python build can't run on this CPU") and "SIGILL" in err
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF' in err and "pip install --force-reinstall" in err
    assert done.stdout == ""


@pytest.mark.model
def test_a_good_build_passes_the_check_once_and_runs(tmp_path, monkeypatch):
    need_llamacpp()
    monkeypatch.setenv("TOKENLOOP_CACHE", str(tmp_path))
    from tokenloop.model.files import default_gguf

    llamacpp_build.check(default_gguf())
    verdicts = json.loads((tmp_path / "llamacpp-check.json").read_text())
    assert verdicts == {llamacpp_build.build_key(): "ok"}
    calls = []
    monkeypatch.setattr(llamacpp_build.subprocess, "run", lambda *a, **k: calls.append(a))
    llamacpp_build.check(default_gguf())  # the verdict is kept per build: no second child
    assert calls == []


@pytest.mark.model
def test_the_engine_runs_after_the_check(tmp_path):
    need_llamacpp()
    from tokenloop.model.files import resolve

    shared = resolve()  # a fresh cache, so no verdict is kept; the tests' conversion linked in, not made again
    (tmp_path / shared.name).symlink_to(shared, target_is_directory=True)
    env = dict(os.environ, TOKENLOOP_CACHE=str(tmp_path))
    done = run_tokenloop(
        "run", "The capital of France is", "--engine", "llama.cpp", "--max-new", "3", "--json", env=env
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line.get("step") for line in lines[:3]] == [1, 2, 3] and lines[-1]["stop"] == "max_new"


def test_a_folder_left_by_an_uninstall_is_not_llama_cpp_python(tmp_path, monkeypatch):
    """An uninstall removes llama-cpp-python's own files but not the libraries `make test-servers`
    copied into its lib/; Python would take that folder for an empty namespace package."""
    import importlib

    from tokenloop.backends import llamacpp

    (tmp_path / "llama_cpp" / "lib").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    monkeypatch.setattr(sys, "path_importer_cache", {})
    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    assert not llamacpp.available()
    (tmp_path / "llama_cpp" / "__init__.py").write_text("")
    importlib.invalidate_caches()
    assert llamacpp.available()


def test_the_test_build_optimises_what_runs_per_token_less_per_request_and_not_the_cold_code():
    """The flags each file of the cached build was compiled with (cmake's compile_commands.json)."""
    need_llamacpp()
    commands = built("llama_server").parent.parent / "compile_commands.json"
    if not commands.is_file():
        pytest.skip(f"{commands} is missing: TOKENLOOP_LLAMA_SERVER names a build not made by `make test-servers`")
    level = {}  # the last -O wins, as in gcc
    for entry in json.loads(commands.read_text()):
        level[entry["file"].split("/vendor/llama.cpp/", 1)[-1]] = re.findall(r" -O(\d)", entry["command"])[-1]
    hot = ["ggml/src/ggml-cpu/ops.cpp", "src/llama-context.cpp", "common/sampling.cpp", "src/llama-vocab.cpp"]
    hot += ["src/llama-kv-cache.cpp"]
    request = ["tools/server/server-context.cpp", "common/chat.cpp", "common/json.cpp"]
    cold = ["common/arg.cpp", "tools/mtmd/clip.cpp", "common/jinja/parser.cpp", "tools/server/server-models.cpp"]
    cold += ["src/llama-model-loader.cpp", "vendor/cpp-httplib/httplib.cpp"]
    assert {name: level[name] for name in hot} == dict.fromkeys(hot, "3")
    assert {name: level[name] for name in request} == dict.fromkeys(request, "1")
    assert {name: level[name] for name in cold} == dict.fromkeys(cold, "0")
    assert {level[name] for name in level if name.startswith("ggml/")} == {"3"}  # the tensor code, all of it
