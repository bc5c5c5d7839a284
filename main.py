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
    venv_python = HERE / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.executable).resolve() != venv_python.resolve():
        os.execv(str(venv_python), [str(venv_python), *sys.argv])  # re-run inside the project's venv
    sys.stderr.write("tokenloop is not installed: run `make setup` first (or `make demo`)\n")
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
    # The compact float32 forward (backends/fast.py): the same logits as transformers, bit for bit
    # (tests/test_fast_path.py), without transformers' 2 s import, so the first step shows sooner.
    return tokenloop_main(["run", args.prompt, "--max-new", args.max_new, "--engine", "torch", "--dtype", "float32"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
