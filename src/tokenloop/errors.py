"""The few errors tokenloop raises. Library code raises them; only the edges (the CLI, the web
app) turn them into a one-line message for the user, made safe for a terminal (`printable`)."""

import contextlib
import re
import sys
import threading


class TokenloopError(Exception):
    """Base class: `str(error)` is a one-line message that says what to do."""

    exit_code = 1


class UsageError(TokenloopError):
    """Bad input from the user: an option value, an empty prompt, a prompt too long."""

    exit_code = 2


class ModelError(TokenloopError):
    """The model can't be found, converted or loaded."""

    exit_code = 2


class ServerError(TokenloopError):
    """An OpenAI-compatible server could not be reached or answered something unusable."""

    exit_code = 1

    def __init__(self, message: str, step: int | None = None):
        if step is not None:
            message = f"{message} (at step {step})"
        super().__init__(message)
        self.step = step


# --- an interrupt that can't be lost ---------------------------------------------------------------
# A signal handler's KeyboardInterrupt lands wherever the main thread is; inside a finalizer (an
# HTTP stream closed by the garbage collector) Python prints "Exception ignored" and runs on. The
# CLI's handler therefore also records the interrupt, and the long loops (a request, a training
# step) raise it again at their next start.
# A block that must not be cut in two (a record written but not yet counted) holds it until it ends.
_INTERRUPTED = threading.Event()
_held = 0  # held blocks the main thread is in (signal handlers run only there)


def interrupt(signum=None, frame=None):
    """The CLI's SIGINT and SIGTERM handler: remember the interrupt, then raise it (at once, or
    where a held block ends)."""
    _INTERRUPTED.set()
    if not _held:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_held():
    """A block an interrupt must not cut in two: one that arrives inside it is raised as it ends."""
    global _held
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _held += 1
    try:
        yield
    finally:
        _held -= 1
    if not _held:
        raise_if_interrupted()


def raise_if_interrupted() -> None:
    """Raise an interrupt that was recorded but swallowed (main thread only: the worker threads of
    a concurrent run end with the main thread's own exit)."""
    if _INTERRUPTED.is_set() and threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt


def clear_interrupt() -> None:
    _INTERRUPTED.clear()


# --- what the edges print --------------------------------------------------------------------------
# Control characters (C0 but newline and tab, DEL, C1), the bidi controls that reorder what is shown,
# and lone surrogates (which no terminal encoding can write).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_IN_A_LINE = re.compile(_UNSAFE.pattern[:-1] + "\n\t]")


def printable(text: str, lines: bool = False) -> str:
    """Text from a server, a model or a file made safe for a terminal: each control character
    (the escape that starts a sequence which retitles the window or clears the screen, a bell, a
    backspace, a C1 code), bidi control or lone surrogate is written as a visible escape such as
    `\\x1b`, never sent. One line unless `lines` (then newlines and tabs stay)."""
    return (_UNSAFE if lines else _UNSAFE_IN_A_LINE).sub(_escaped, str(text))


_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable_json(text: str) -> str:
    """A JSON text (`json.dumps(..., ensure_ascii=False)`, which escapes C0 itself) with the rest
    of `printable`'s characters written as `\\uXXXX`: the same JSON to a parser, safe on a terminal."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _escaped(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def say(message: str) -> None:
    """A note on stderr, `tokenloop: MESSAGE`, safe for the terminal whatever the message quotes."""
    print(f"tokenloop: {printable(message)}", file=sys.stderr)
