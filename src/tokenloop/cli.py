"""The `tokenloop` command line. Errors become one line on stderr here, and nowhere else."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from rich.console import Console

from . import __version__
from .commands import MODULES
from .errors import TokenloopError


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, like every other bad input
        sys.stderr.write(f"tokenloop: {message} (see: {self.prog} --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tokenloop", description="Watch an LLM generate one token at a time, and measure what it costs."
    )
    parser.add_argument("--version", action="version", version=f"tokenloop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    console = Console(highlight=False)
    previous = _term_as_interrupt()
    try:
        return args.func(args, console) or 0
    except TokenloopError as e:
        console.file.flush()
        sys.stderr.write(f"tokenloop: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("tokenloop: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _term_as_interrupt():
    """SIGTERM ends a command as Ctrl+C does, so what a command keeps on Ctrl+C (a --save file's
    completed requests, the JSON lines written) it keeps on a kill too. The old handler, to put back."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


if __name__ == "__main__":
    sys.exit(main())
