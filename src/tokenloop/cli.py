"""The `tokenloop` command line. Errors become one line on stderr here, and nowhere else, made
safe for the terminal (a server's words in a message can't send an escape sequence); every
command prints through a `SafeConsole`."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from . import __version__
from .commands import MODULES
from .errors import TokenloopError, clear_interrupt, interrupt, printable
from .terminal import SafeConsole


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, like every other bad input
        sys.stderr.write(f"tokenloop: {printable(message)} (see: {self.prog} --help)\n")
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
    console = SafeConsole(highlight=False)
    previous = _signals_as_interrupt()
    try:
        return args.func(args, console) or 0
    except TokenloopError as e:
        console.file.flush()
        sys.stderr.write(f"tokenloop: {printable(e)}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("tokenloop: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _signals_as_interrupt() -> dict:
    """SIGTERM ends a command as Ctrl+C does, so what a command keeps on Ctrl+C (a --save file's
    completed requests, the JSON lines written) it keeps on a kill too; both are also recorded, so
    one swallowed by a finalizer is raised again (`errors.interrupt`). The old handlers, to put back."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    clear_interrupt()
    # Ctrl+C only where Python's own handler is in place: an ignored SIGINT (a job started in the
    # background) or an embedding program's handler is left alone.
    ours = [signal.SIGTERM] + [signal.SIGINT] * (signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    return {sig: signal.signal(sig, interrupt) for sig in ours}


if __name__ == "__main__":
    sys.exit(main())
