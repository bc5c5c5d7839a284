"""Input from files and the environment is bounded and checked before it is used: a prompt on stdin
that is closed, endless (/dev/zero), huge or not UTF-8; `latency --load` on files that are not a
`--save` file in every way one can be wrong (encoding, nesting, types, empty chunks, a device, a
FIFO, its size); numbers on the command line that are not finite or have hundreds of digits; and
`--json` that would carry NaN.

Modules (src/tokenloop/): commands/common.py, commands/loop.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.cli_runner import cli

from tokenloop.commands.common import MAX_STDIN, emit_json

SRC = Path(__file__).resolve().parent.parent / "src"
MAIN = "import sys; from tokenloop.cli import main; sys.exit(main())"


def _run(args: list[str], **stdin) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, env=env, timeout=120, **stdin)


@pytest.mark.parametrize(
    "stdin, message",
    [
        ("closed", "the prompt is empty"),
        ("/dev/zero", f"the prompt on stdin is over {MAX_STDIN >> 20} MB"),
        ("huge", f"the prompt on stdin is over {MAX_STDIN >> 20} MB"),
        ("latin-1", "the prompt is not valid UTF-8 text"),
        ("/dev/null", "the prompt is empty"),
    ],
)
def test_a_prompt_on_stdin_is_read_bounded_and_checked(stdin, message, tmp_path):
    args = ["next", "-", "--model", "/no/such/model"]
    if stdin == "closed":  # `next - <&-`
        run = subprocess.run(
            [sys.executable, "-c", "import os; os.close(0); " + MAIN, *args],
            capture_output=True, env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    elif stdin == "huge":
        run = _run(args, input=b"pods " * (MAX_STDIN // 4))
    elif stdin == "latin-1":
        run = _run(args, input="café".encode("latin-1"))
    else:
        with open(stdin, "rb") as f:
            run = _run(args, stdin=f)
    err = run.stderr.decode()
    assert run.returncode == 2 and message in err and "Traceback" not in err, err
    assert err.count("\n") == 1


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


GOOD = {"max_tokens": 2, "prompt": "hi", "chunks": [[1.0, 1, True], [2.0, 1, True]]}


def _record(**change) -> str:
    return json.dumps({**GOOD, **change}) + "\n"


BAD_FILES = {
    "not UTF-8": (b"\xff\xfe{}\n", "not UTF-8"),
    "nested 100,000 deep": ("[" * 100_000 + "]" * 100_000 + "\n", "not JSON"),
    "no chunks": (_record(chunks=[]), "chunks must be a non-empty list"),
    "a chunk of the wrong shape": (_record(chunks=[[1.0, 1]]), "each chunk"),
    "NaN ms": (_record(chunks=[[float("nan"), 1, True]]), "each chunk"),
    "group a number": (_record(group=5), "group has the wrong type"),
    "usage a list": (_record(usage=[1, 2]), "usage has the wrong type"),
    "sent_s a string": (_record(sent_s="now"), "sent_s has the wrong type"),
    "sent_s 1e400": (_record(sent_s=1e400), "sent_s has the wrong type"),
    "max_tokens 10**400": (_record(max_tokens=10**400), "max_tokens has the wrong type"),
    "an unknown field": (_record(colour="red"), "unknown field 'colour'"),
    "a list, not an object": ("[1, 2]\n", "not an object"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_latency_load_refuses_each_way_a_file_is_not_a_save_file(capsys, tmp_path, case):
    data, message = BAD_FILES[case]
    path = _write(tmp_path / "raw.jsonl", data)
    code, out, err = cli(capsys, "latency", "--load", str(path))
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_latency_load_reads_no_device_and_opens_no_fifo(capsys, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo), str(tmp_path)):
        result: dict = {}
        worker = threading.Thread(target=lambda p=path, r=result: r.update(r=cli(capsys, "latency", "--load", p)))
        worker.start()
        worker.join(10)
        assert not worker.is_alive(), f"--load {path} blocked"
        code, out, err = result["r"]
        assert code == 2 and "not a regular file" in err, err


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "max_tokens",
                "prompt",
                "chat",
                "group",
                "sent_s",
                "chunks",
                "done_ms",
                "usage",
                "server",
                "metrics",
                "cold",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=5),
            st.lists(st.one_of(st.integers(), st.lists(st.integers(), max_size=3)), max_size=3),
            st.dictionaries(st.text(max_size=3), st.floats(), max_size=2),
        ),
    )
)
def test_latency_load_of_any_record_is_numbers_or_a_one_line_refusal(tmp_path_factory, data):
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    from tokenloop.cli import main

    path = _write(tmp_path_factory.mktemp("load") / "raw.jsonl", json.dumps({**GOOD, **data}) + "\n")
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["latency", "--load", str(path), "--json"])
    assert code in (0, 2), err.getvalue()
    if code == 0:
        json.loads(out.getvalue())  # strict JSON
    else:
        assert err.getvalue().count("\n") == 1 and "Traceback" not in err.getvalue()


@pytest.mark.parametrize(
    "args, message",
    [
        (["latency", "--ttft", "nan", "--itl", "5"], "--ttft takes a finite number, not 'nan'"),
        (["latency", "--ttft", "5", "--itl", "inf"], "--itl takes a finite number, not 'inf'"),
        (["latency", "--ttft", "5", "--itl", "1e400"], "--itl takes a finite number"),
        (["latency", "--ttft", "5", "--itl", "5", "--tokens", "9" * 400], "--tokens must be at most 1,000,000,000"),
        (["latency", "--ttft", "5", "--itl", "5", "--tokens", "99999999999"], "--tokens must be at most"),
        (["run", "hi", "--max-new", "1" * 50], "--max-new must be at most"),
        (["next", "hi", "--server-timeout", "nan"], "--server-timeout takes a finite number"),
    ],
)
def test_numbers_on_the_command_line_are_finite_and_bounded_as_they_are_read(capsys, args, message):
    code, out, err = cli(capsys, *args)
    assert code == 2 and message in err and err.count("\n") == 1, err


@given(
    st.recursive(
        st.one_of(st.floats(), st.integers(), st.text(max_size=3), st.none()),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
        max_leaves=10,
    )
)
def test_json_output_is_strict_json_whatever_the_numbers(value):
    from contextlib import redirect_stdout
    from io import StringIO

    with redirect_stdout(StringIO()) as out:
        emit_json({"v": value})
    line = out.getvalue()
    json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in --json output"))


def test_budget_json_with_huge_answers_is_strict_json(capsys):
    code, out, err = cli(capsys, "latency", "--ttft", "1e300", "--itl", "1e300", "--tokens", "1000000000", "--json")
    assert code in (0, 2), err
    if code == 0:
        json.loads(out, parse_constant=lambda c: pytest.fail(c))
