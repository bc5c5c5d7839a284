"""`tokenloop notebook`: where the companion notebook is, and how to open it."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import UsageError

NAME = "day01.ipynb"
CHECKOUT = Path(__file__).resolve().parents[3]  # src/tokenloop/commands/ -> the repository root
JUPYTERS = ["jupyter-lab", "jupyter-notebook"]  # the first one found opens the notebook


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "notebook",
        help="where the companion notebook is and how to open it",
        description="The companion notebook builds the generation loop from scratch on the embedded model: "
        "tokens, one forward pass, softmax, top-k, the loop, the stop token, a KV cache, sampling.",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument("--open", action="store_true", help="open it in JupyterLab (or Jupyter Notebook) if installed")
    how.add_argument("--path", action="store_true", help="print only the notebook's path")
    p.set_defaults(func=cmd_notebook)


def find_notebook() -> Path:
    """notebooks/day01.ipynb in the current folder, or in the checkout tokenloop runs from."""
    for folder in (Path.cwd() / "notebooks", Path.cwd(), CHECKOUT / "notebooks"):
        if (folder / NAME).is_file():
            return folder / NAME
    raise UsageError(
        f"notebooks/{NAME} not found: it ships with the tokenloop source, so run this from a tokenloop checkout"
    )


def find_jupyter() -> str | None:
    """A Jupyter front end on PATH, or beside this Python (a venv that is not activated)."""
    here = Path(sys.executable).parent
    for name in JUPYTERS:
        found = shutil.which(name) or shutil.which(name, path=str(here))
        if found:
            return found
    return None


def shown(path: Path) -> str:
    """The path relative to the current folder when it is inside it (shorter to copy)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cmd_notebook(args, console) -> int:
    path = find_notebook()
    if args.path:
        print(path)
        return 0
    jupyter = find_jupyter()
    if args.open:
        if jupyter is None:
            raise UsageError(
                "Jupyter is not installed here: run `pip install jupyterlab`, then `tokenloop notebook --open`"
            )
        return subprocess.call([jupyter, str(path)])
    lines = [
        f"The companion notebook: {path}",
        "It builds the loop from scratch on the embedded model; every output is computed as you run it.",
        "",
        "Open it with one of:",
        f"  jupyter lab {shown(path)}",
        f"  code {shown(path)}      (VS Code with its Jupyter extension)",
        "",
        f"Jupyter is installed ({Path(jupyter).name}): `tokenloop notebook --open` starts it."
        if jupyter
        else "Jupyter is not installed here: `pip install jupyterlab`, then `tokenloop notebook --open`.",
    ]
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)
    return 0
