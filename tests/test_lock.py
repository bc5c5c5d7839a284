"""The lock files (scripts/lock.py): requirements.lock and requirements-vllm.lock pin every package
with its hashes, match pyproject.toml's dependencies, and a stale one is one line naming the fix."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ("requirements.lock", "requirements-vllm.lock")


def check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "lock.py"), "--check"], capture_output=True, text=True, timeout=60
    )


def test_the_locks_match_pyproject():
    done = check(ROOT)
    assert done.returncode == 0, done.stderr  # the line says: run `make lock`


def test_every_package_is_pinned_with_hashes_and_torch_is_the_local_cpu_wheel():
    for name in LOCKS:
        lines = (ROOT / name).read_text().splitlines()
        pins = [line.split()[0] for line in lines if line and not line[0].isspace() and not line.startswith("#")]
        assert pins and all("==" in pin and not pin.startswith("-e") for pin in pins), name
        assert lines.count("") < 3 and sum("--hash=sha256:" in line for line in lines) >= len(pins), name
        assert "torch==2.13.0+cpu" in pins, name  # never PyPI's CUDA build
    served = (ROOT / "requirements-vllm.lock").read_text()
    assert "\ntorchvision==" not in served and "\ntorchaudio==" not in served  # CUDA builds, left out


def test_a_changed_pyproject_makes_make_test_fail_with_one_line(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "lock.py", tmp_path / "scripts")
    for name in ("pyproject.toml", *LOCKS):
        shutil.copy(ROOT / name, tmp_path)
    assert check(tmp_path).returncode == 0
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"rich>=13",', '"rich>=13",\n    "six>=1.16",'))
    done = check(tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "stale" in done.stderr and "`make lock`" in done.stderr
