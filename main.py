"""The demo: watch the embedded model write, one token at a time.

python3 main.py ["your prompt"] [--max-new N]
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_PROMPT = "Kubernetes pods are scheduled by the"

try:
    from tokenloop.cli import main as tokenloop_main
except ImportError:
    # `python3 main.py` with a python3 that is not the project's (pyenv's shim, the system's): run
    # again inside .venv. Which interpreter runs is told by sys.prefix, not by resolving paths:
    # .venv/bin/python is often a symlink to that very python3, so the resolved paths are equal.
    venv = HERE / ".venv"
    venv_python = venv / "bin" / "python"
    inside = Path(sys.prefix).resolve() == venv.resolve() or os.environ.get("TOKENLOOP_REEXEC") == "1"
    if venv_python.exists() and not inside:
        os.environ["TOKENLOOP_REEXEC"] = "1"  # once: a broken venv says so instead of looping
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).absolute()), *sys.argv[1:]])
    sys.stderr.write(
        "tokenloop is not installed here: run `make demo` first (it sets up .venv), then python3 main.py\n"
    )
    raise SystemExit(2)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Watch a real language model generate one token at a time.")
    parser.add_argument(
        "prompt", nargs="?", default=DEFAULT_PROMPT, help=f"the text to continue (default: {DEFAULT_PROMPT!r})"
    )
    parser.add_argument("--max-new", default="16", help="how many tokens to generate (default 16)")
    args = parser.parse_args(argv)
    print("Each step: the model scores every token of its vocabulary; the bars are the top 8 (raw softmax).")
    print("The ▶ token is picked (greedy), appended, and the longer text goes round again. ␣ = space, ↵ = newline.\n")
    # The float32 graph in ONNX Runtime (backends/ort.py): the same weights as transformers' model
    # (top-1 agreement 100%, printed as it opens), and a greedy run that never imports torch, so the
    # first distribution shows about a second after the command (tests/backends/test_ort.py).
    return tokenloop_main(
        ["run", args.prompt, "--max-new", args.max_new, "--engine", "onnxruntime", "--dtype", "float32"]
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
