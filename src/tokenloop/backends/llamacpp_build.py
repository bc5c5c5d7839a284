"""How llama.cpp should be compiled for this CPU, and whether the installed build can run here.

llama.cpp's default build (`GGML_NATIVE=ON`) hands `-march=native` to the compiler: every
instruction the build machine *advertises* may be used. Some virtual CPUs advertise more than
they run (AMX: `amx_tile` is listed, `ldtilecfg` faults), and a wheel built on one machine and
reused on another may meet a CPU without AVX-512. Either way the process dies inside
`llama_decode` with SIGILL or SIGSEGV, which no Python `try` can catch.

So:
- `cmake_args()` names the instruction sets explicitly, from what this CPU lists in
  /proc/cpuinfo, and never AMX; `cmake_args(portable=True)` stops at x86-64-v3 (AVX2, FMA, F16C,
  BMI2: Intel since Haswell, AMD since Zen 1), so one build, kept in a cache, runs on any such
  CPU (the test servers' build, `scripts/test_peers.py`);
- `check()` runs one real decode in a child process the first time a build is used and keeps
  the verdict per build (keyed by the library files' size and time), so a broken build is a
  one-line error with the rebuild command instead of a core dump.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path

from ..errors import ModelError

# ggml's x86 options, each with the /proc/cpuinfo flags it needs. AMX is left out on purpose.
X86_OPTIONS = {
    "GGML_SSE42": ("sse4_2",),
    "GGML_AVX": ("avx",),
    "GGML_AVX2": ("avx2",),
    "GGML_FMA": ("fma",),
    "GGML_F16C": ("f16c",),
    "GGML_BMI2": ("bmi2",),
    "GGML_AVX_VNNI": ("avx_vnni",),
    "GGML_AVX512": ("avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"),
    "GGML_AVX512_VBMI": ("avx512f", "avx512vbmi"),
    "GGML_AVX512_VNNI": ("avx512f", "avx512_vnni"),
    "GGML_AVX512_BF16": ("avx512f", "avx512_bf16"),
}
ALWAYS_OFF = ("GGML_NATIVE", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")
# The x86-64-v3 level: what every x86-64 CPU of the last decade runs (no AVX-512, no AVX-VNNI).
PORTABLE = ("GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The instruction-set flags this CPU lists (empty where there is no /proc/cpuinfo)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cmake_args(flags: set[str] | None = None, portable: bool = False) -> list[str]:
    """-D options for ggml that use what this CPU offers, without -march=native and without AMX;
    `portable`: no more than x86-64-v3 (AVX2, FMA, F16C, BMI2) even where this CPU has AVX-512,
    so that the build runs on any CPU of that level (a CPU below it gets what it has)."""
    flags = cpu_flags() if flags is None else flags
    args = [f"-D{name}=OFF" for name in ALWAYS_OFF]
    for name, needs in X86_OPTIONS.items():
        on = bool(flags) and all(f in flags for f in needs) and (not portable or name in PORTABLE)
        args.append(f"-D{name}={'ON' if on else 'OFF'}")
    return args


def rebuild_command() -> str:
    """The pip command that rebuilds llama-cpp-python for this CPU."""
    return (
        f'CMAKE_ARGS="{" ".join(cmake_args())}" pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python'
    )


# --- does the installed build run here? ---------------------------------------------------------

CHILD = """
import sys, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=64, n_threads=1, verbose=False)
ids = llm.tokenize(b"The cat sat on the", add_bos=False)
llm.eval(ids)
print("ok", len(ids))
"""


def build_key() -> str | None:
    """A fingerprint of the installed llama.cpp libraries (None if llama-cpp-python is missing)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0])
    parts = [str(folder)]
    for lib in sorted((folder / "lib").glob("*.so*")) + sorted((folder / "lib").glob("*.dylib")):
        stat = lib.stat()
        parts.append(f"{lib.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _verdict_file() -> Path:
    from ..model.files import cache_root

    return cache_root() / "llamacpp-check.json"


def _describe(signal_number: int) -> str:
    try:
        name = signal.Signals(signal_number).name
    except ValueError:
        name = f"signal {signal_number}"
    what = {"SIGILL": "an instruction this CPU can't run", "SIGSEGV": "a memory fault", "SIGBUS": "a bus error"}
    return f"{name}, {what.get(name, 'killed')}"


def check(gguf: Path, timeout: float = 120) -> None:
    """Decode a few tokens of `gguf` in a child process once per build; raise ModelError if it dies."""
    key = build_key()
    if key is None:
        return
    verdicts_path = _verdict_file()
    try:
        verdicts = json.loads(verdicts_path.read_text())
    except (OSError, ValueError):
        verdicts = None
    verdicts = verdicts if isinstance(verdicts, dict) else {}
    if verdicts.get(key) == "ok":
        return
    try:
        code = subprocess.run([sys.executable, "-c", CHILD, str(gguf)], capture_output=True, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        code, why = None, f"no answer in {timeout:.0f} s"
    if code is not None and code >= 0:
        # 0: the build runs here. Above 0: a Python error (a file llama.cpp can't read, say), which the
        # load in this process reports in its own words; only a death by signal is the build's fault.
        if code == 0:
            verdicts[key] = "ok"
            try:
                verdicts_path.parent.mkdir(parents=True, exist_ok=True)
                verdicts_path.write_text(json.dumps(verdicts))
            except OSError:
                pass  # the check runs again next time; nothing is lost
        return
    if code is not None:
        why = _describe(-code)
    raise ModelError(
        f"this llama-cpp-python build can't run on this CPU (a test decode died: {why}); "
        f"rebuild it for this CPU with: {rebuild_command()}"
    )
