"""`tokenloop lesson`: the lesson and the lab as a local web app."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket
import sys

from ..errors import UsageError
from .common import add_backend_options, open_backend

DEFAULT_PORT = 8765  # not 8000: that is where vLLM listens by default


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lesson",
        help="the lesson and the lab in your browser (a local web app)",
        description="Start a local web app: the lesson (guess, then reveal, with live numbers from the model) "
        "and the lab (the loop on your own prompts). With --url the server answers and the embedded model "
        "runs beside it; the URL is fixed here and the page cannot change it.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the page may be reached by, besides localhost and --host (repeatable)",
    )
    p.add_argument("--lesson", default="day01", help="which lesson to show (default day01)")
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print the lesson as one Markdown document for your own AI assistant, with the live numbers that "
        "take a second or two measured now (Lesson 1: the next-token distribution; Lesson 7: the key and value "
        "check and bytes per token), and exit (no web app)",
    )
    add_backend_options(p)
    p.set_defaults(func=cmd_lesson)


def port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port takes a whole number, not {value!r}") from None
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be between 1 and 65535, not {number}")
    return number


def check_free(host: str, port_: int) -> None:
    """Fail early with a clear message rather than after loading the model."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port_))
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EACCES):  # the port is taken, or below 1024
            raise UsageError(f"can't listen on {host}:{port_} ({e.strerror}): pick another with --port") from None
        why = e.strerror or str(e)  # not an address (999.1.1.1), or not one of this machine's
        raise UsageError(
            f"--host {host}: can't listen there ({why}); give an address of this machine, e.g. 127.0.0.1"
        ) from None


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def allowed_hosts(host: str, extra: list[str]) -> list[str]:
    """The Host names the app answers to: this machine's loopback names, --host, --allow-host.
    (A page on another site reaching us through a rebound DNS name names another host.)"""
    names = ["127.0.0.1", "localhost", "[::1]"]
    if host not in ("0.0.0.0", "::"):
        names.append(f"[{host}]" if ":" in host else host)
    return list(dict.fromkeys(names + list(extra)))


def address(host: str, port_: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://[{shown}]:{port_}/" if ":" in shown else f"http://{shown}:{port_}/"


def cmd_lesson(args, console) -> int:
    import uvicorn

    from ..lessons import content
    from ..web import create_app

    lesson = content.load(args.lesson)  # a wrong name fails before the model loads
    log = lambda message: print(f"tokenloop: {message}", file=sys.stderr)  # noqa: E731
    if args.markdown:
        return print_markdown(args, lesson, log)
    check_free(args.host, args.port)
    backend = open_backend(args, log=log)
    compare, server_url = None, None
    if not backend.in_process:  # the embedded model beside the server, for the side-by-side view
        from ..backends import backend_class

        compare, server_url = backend_class("embedded")(log=log), backend.root
    hosts = allowed_hosts(args.host, args.allow_host)
    app = create_app(backend, compare=compare, lesson=args.lesson, server_url=server_url, allowed_hosts=hosts)
    if not loopback(args.host):
        log(
            f"listening on {args.host}: anyone who can reach this machine can run the model, the lab and the "
            f"training demo; only requests addressed to {', '.join(hosts)} are answered (add names with --allow-host)"
        )
    console.print(
        f"tokenloop lesson: [bold]{address(args.host, args.port)}[/bold]  (the lab: {address(args.host, args.port)}lab)"
    )
    console.print(
        f"model: {backend.model} ({backend.name}{', the embedded model beside it' if compare else ''})", soft_wrap=True
    )
    console.print("Ctrl+C stops it.")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def print_markdown(args, lesson: dict, log) -> int:
    """The lesson for your own AI: its words, and the live numbers measured here and now."""
    from ..lessons.markdown import measure, render

    backend = open_backend(args, log=log)
    sys.stdout.write(render(lesson, measure(backend, lesson)))
    return 0
