"""The companion notebook runs top to bottom, and `tokenloop notebook` finds it.

Modules (src/tokenloop/): commands/notebook.py."""

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

from tokenloop.cli import main
from tokenloop.commands import notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "day01.ipynb"


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_the_notebook_is_stored_without_outputs():
    """Every number a learner sees is computed on their machine, none shipped in the file."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert len(code_cells(nb)) >= 10
    for cell in code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.fixture
def venv_kernel(tmp_path, monkeypatch):
    """A `python3` kernel spec that launches this interpreter (the venv's), ahead of any other.

    Its torch computes on one thread: under `make test` the llama.cpp build may be running beside
    the suite at idle priority, and beside it a kernel on two threads took 45-260 s instead of 8
    (on one, 12 s; a plain script on two threads was not slowed)."""
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "tokenloop", "language": "python", "env": {"OMP_NUM_THREADS": "1"}}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    return "python3"


@pytest.mark.model
@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom(venv_kernel):
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Any exception in a cell (the notebook asserts its own checks too) fails the test here.
    NotebookClient(
        nb, timeout=600, kernel_name=venv_kernel, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    for cell in code_cells(nb):
        assert cell.execution_count is not None
        printed = "".join(
            out.get("text", "") for out in cell.outputs if out.output_type == "stream" and out.name == "stdout"
        )
        assert printed.strip(), f"a code cell printed nothing: {cell.source[:60]!r}"
    assert all(out.output_type != "error" for cell in code_cells(nb) for out in cell.outputs)


# --- tokenloop notebook ----------------------------------------------------------------------
def test_notebook_command_prints_the_path_and_how_to_open_it(capsys):
    assert main(["notebook"]) == 0
    out = capsys.readouterr().out
    assert f"The companion notebook: {NOTEBOOK}" in out
    assert "jupyter lab" in out


def test_notebook_path_is_found_from_any_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["notebook", "--path"]) == 0
    assert Path(capsys.readouterr().out.strip()) == NOTEBOOK


def test_open_starts_jupyter_with_the_notebook(capsys, tmp_path, monkeypatch):
    """A stand-in `jupyter-lab` on PATH records its arguments: a real one would start a server."""
    fake = tmp_path / "jupyter-lab"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "args"}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert main(["notebook", "--open"]) == 0
    assert (tmp_path / "args").read_text().strip() == str(NOTEBOOK)


def test_open_without_jupyter_says_what_to_install(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    if notebook.find_jupyter():
        pytest.skip("Jupyter is installed beside this Python")
    assert main(["notebook", "--open"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install jupyterlab" in err


def test_a_missing_notebook_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(notebook, "CHECKOUT", tmp_path)
    assert main(["notebook"]) == 2
    assert "run this from a tokenloop checkout" in capsys.readouterr().err
