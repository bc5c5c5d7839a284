"""Text from a server or a model never drives the terminal (issue 30): a token string, a model's
name or a server's words in an error carry no escape sequence to the screen (a window title, a
cleared screen), are never read as Rich markup (`evil[/]model` crashed `lesson --url`), and can't
crash the printing (a lone surrogate). Generated strings through every printing path; the CLI on
the tiny real model, whose byte-level tokens include ESC and BEL; and a real llama-server whose
model name is hostile (`-a`, as any server's operator can name a model).

Modules (src/tokenloop/): terminal.py, errors.py, cli.py."""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.table import Table
from rich.text import Text
from support.cli_runner import cli
from support.launcher import free_port

from tokenloop.errors import printable, printable_json
from tokenloop.records import Candidate, Done, NextToken, Step
from tokenloop.terminal import LoopView, SafeConsole, titled

UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # the colours and bold Rich writes itself
PROGRESS = re.compile(r"\x1b\[(?:[0-9;]*m|\?25[lh]|[0-9]*[AK])|\r")  # and a progress bar's moves (on stderr)
HOSTILE = [
    "evil[/]model",
    "[bold]x[/bold",
    "[link=https://evil.example]click[/link]",
    "\x1b]0;pwned\x07",
    "\x1b[2J\x1b[H",
    "\x9b31m",
    "a\u202eb",
    "caf\ud800",
    "back\x08\x08\x08",
    "\r\n\t\x00",
]
TEXTS = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(
        alphabet=st.sampled_from([*"[]/=\\ab ", "\x1b", "\x07", "\x9b", "\u202e", "\ud800", "\n", "\r"]), max_size=30
    ),
    st.text(max_size=30),
)
RUNS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def terminal() -> tuple[SafeConsole, io.StringIO]:
    out = io.StringIO()
    return SafeConsole(file=out, force_terminal=True, color_system="truecolor", width=100), out


def clean(output: str, own: re.Pattern = SGR) -> str:
    """What reached the terminal besides Rich's own codes: must hold no control character."""
    left = own.sub("", output)
    assert not UNSAFE.search(left.replace("\n", "")), repr(left)
    return left


@RUNS
@given(text=TEXTS)
def test_printable_escapes_every_control_and_keeps_the_rest(text):
    one, many = printable(text), printable(text, lines=True)
    assert not UNSAFE.search(one) and "\n" not in one and "\t" not in one
    assert not UNSAFE.search(many)
    if not UNSAFE.search(text) and "\n" not in text and "\t" not in text:
        assert one == text
    one.encode("utf-8")  # writable whatever the terminal's encoding


@RUNS
@given(record=st.dictionaries(TEXTS, st.one_of(TEXTS, st.lists(TEXTS, max_size=3)), max_size=4))
def test_json_lines_carry_any_text_exactly_and_nothing_a_terminal_acts_on(record):
    line = printable_json(json.dumps(record, ensure_ascii=False))
    assert not UNSAFE.search(line) and json.loads(line) == record


@RUNS
@given(text=TEXTS)
def test_no_printing_path_sends_a_control_character_or_reads_markup(text):
    console, out = terminal()
    console.print(titled("Latency", f": {text} at http://x"))  # a header quoting the server
    console.print(Text(text))  # a Text built from it (Rich keeps ESC there)
    console.print(text, markup=False)
    table = Table("name")
    table.add_row(Text(text))
    console.print(table)
    left = clean(out.getvalue())
    squeezed = "".join(left.split())  # (Rich wraps long lines)
    assert "".join(f": {printable(text)} at http://x".split()) in squeezed  # shown literally, never read as markup


@RUNS
@given(token=TEXTS, model=TEXTS, fancy=st.booleans())
def test_the_loop_view_shows_any_token_and_model_name_safely(token, model, fancy):
    console, out = terminal()
    view = LoopView(console, "prompt " + token, fancy=fancy)
    top = [Candidate(7, token, 0.6, -0.5), Candidate(8, model, 0.3, -1.2)]
    view.next_token(NextToken(backend="server", model=model, prompt_ids=[1, 2], top=top))
    view.step(Step(step=1, position=2, chosen=top[0], top=top, ms=1.0, cache=True, tokens_in=1))
    view.done(Done(text=token + model, ids=[7], stop="eos", tokens_per_s=1.0, seconds=1.0, prompt_ids=[1, 2]))
    clean(out.getvalue())


# --- the real command line ----------------------------------------------------------------------
ESCAPES = "\x1b]0;pwned\x07 then \x1b[2J cleared"


@pytest.mark.parametrize("tty", [True, False])
@pytest.mark.parametrize("command", ["next", "run"])
def test_next_and_run_print_escape_tokens_as_escapes(capsys, monkeypatch, tiny, tiny_model_dir, command, tty):
    assert "\x1b" in {tiny.token_text(i) for i in tiny.encode(ESCAPES)}  # the tokens themselves carry ESC
    monkeypatch.setenv("TTY_COMPATIBLE", "1" if tty else "0")  # Rich: draw as on a terminal, or not
    code, out, err = cli(
        capsys, command, ESCAPES, "--model", str(tiny_model_dir), *(["--max-new", "3"] * (command == "run"))
    )
    assert code == 0, err
    clean(out)
    if tty and command == "run":  # the prompt is shown again with the answer
        assert printable(ESCAPES) in SGR.sub("", out).replace("\n", "")


@pytest.mark.parametrize(
    "argv",
    [
        ["lesson", "--lesson", "day\x1b[2J"],
        ["next", "hi", "--url", "http://127.0.0.1:1\x1b]0;x\x07"],
        ["next", "hi", "--model", "/no/such/\x1b[2Jmodel"],
        ["next", "hi", "--top-k", "\x1b[2J"],
        ["lesson", "--allow-host", "\x9b2J"],
    ],
)
def test_an_error_line_quoting_hostile_text_is_one_safe_line(capsys, argv):
    code, out, err = cli(capsys, *argv)
    assert code in (1, 2) and err.count("\n") == 1 and err.startswith("tokenloop: ")
    clean(err)


@pytest.fixture
def hostile_server(tmp_path):
    """A real llama-server whose model is named with markup and an escape sequence (its `-a`)."""
    from support.launcher import ServerProcess
    from support.real_servers import ALIAS, llama_server

    command = llama_server(tmp_path, context=512).command  # the shared recipe, with the model named otherwise
    command[command.index(ALIAS)] = "evil[/]model\x1b]0;pwned\x07"
    command[command.index("--port") + 1] = "{port}"
    with ServerProcess(command, "/health", tmp_path) as served:
        yield served.url


@pytest.mark.server
@pytest.mark.llamacpp  # a llama-server of its own: ordered with llama.cpp's tests, after its build
@pytest.mark.parametrize("tty", [True, False])
def test_a_hostile_model_name_is_never_markup_nor_an_escape(capsys, monkeypatch, hostile_server, tty):
    monkeypatch.setenv("TTY_COMPATIBLE", "1" if tty else "0")
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: None)  # the banner, then no server
    url = hostile_server
    for argv, names in (
        (["probe", "--url", url], True),
        (["probe", "--url", url, "--json"], False),
        (["next", "hi", "--url", url], tty),  # the bars' header names the model
        (["run", "hi", "--url", url, "--max-new", "2"], False),
        (["latency", "--url", url, "--max-tokens", "4", "--points", "2", "--repeats", "1"], True),
        (["staircase", "--url", url, "--max-len", "16", "--points", "2", "--repeats", "1"], True),
        (["lesson", "--url", url, "--port", str(free_port())], True),
    ):
        code, out, err = cli(capsys, *argv)
        assert code == 0, (argv, err)
        clean(out), clean(err, PROGRESS)
        assert not names or "]model\\x1b]0;pwned" in SGR.sub("", out), (argv, out)  # latency: after the last "/"
