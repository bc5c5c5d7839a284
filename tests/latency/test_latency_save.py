"""Nothing measured is lost: `latency --save` writes each request as it completes, so Ctrl+C or
SIGTERM keeps every completed one (and prints their numbers); a target that can't be written is
refused before anything is sent or trained; an existing file is never overwritten; a write that
fails late ends the writing, never the run. `train --save` is checked the same way.

The runs are against FakeVLLM: an interrupt needs a run long enough to be cut in the middle, which
the stand-in answers in milliseconds and a real server on this CPU would take minutes to reach.

Modules (src/tokenloop/): measure/streamed.py, commands/latency/measured.py, cli.py.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.cli_runner import cli
from support.fake_vllm import FakeVLLM, fake_vllm
from support.launcher import free_port

from tokenloop.errors import UsageError
from tokenloop.measure import streamed

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_keeps_every_completed_request_and_prints_their_numbers(tmp_path, sig):
    saved = tmp_path / "raw.jsonl"
    with fake_vllm(FakeVLLM(end_after=10**9, stream_text=True)) as url:
        run = subprocess.Popen(
            # Python's own Ctrl+C handler, as in a terminal (a job started in the background,
            # as CI may be, inherits an ignored SIGINT, which tokenloop leaves ignored)
            [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from tokenloop.cli import main; sys.exit(main())",
             "latency", "--url", url, "--max-tokens", "3", "--points", "2", "--repeats", "5000", "--save", str(saved)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not saved.exists() or saved.read_text().count("\n") < 8):
            time.sleep(0.05)
        run.send_signal(sig)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 130 and err.strip().endswith("tokenloop: interrupted"), err
    kept = streamed.load(saved)  # every line a whole record
    assert len(kept) >= 8 and saved.read_text().endswith("\n")
    assert f"raw timestamps of {len(kept)} requests written" in out and "TTFT" in out, out


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interrupt_a_finalizer_swallowed_is_raised_at_the_next_request():
    """A signal's KeyboardInterrupt that lands in a finalizer (CI once saw it in httpx's stream
    close) is printed as "Exception ignored" and lost; the handler records it, and the next request
    raises it, so `latency --save` still ends with 130. The finalizer here stands in for that timing,
    which a real signal hits only by chance."""
    from tokenloop.backends.server.client import Client
    from tokenloop.errors import clear_interrupt, interrupt

    class ClosedByTheCollector:
        def __del__(self):
            interrupt(signal.SIGTERM, None)

    with fake_vllm(FakeVLLM()) as url:
        client = Client(url)
        try:
            assert client.call("GET", "/models")["data"]  # nothing recorded: it answers
            ClosedByTheCollector()  # dropped at once: the interrupt goes nowhere, and this line runs on
            with pytest.raises(KeyboardInterrupt):
                client.call("GET", "/models")
            with pytest.raises(KeyboardInterrupt), client.events("/completions", {"prompt": "a"}):
                pass
        finally:
            clear_interrupt()
            client.close()
        assert Client(url).call("GET", "/models")["data"]  # cleared: a new run starts clean


def test_an_interrupt_between_a_records_write_and_its_count_is_raised_after_the_count(tmp_path):
    """CI once saw a run interrupted with 31 records in its file and "30 requests written" said:
    the signal landed after the record's write, before its count. A record is written and counted
    as one. The flush here calls the handler, as a signal arriving at that moment would."""
    from tokenloop.errors import clear_interrupt, interrupt

    recorder = streamed.Recorder(tmp_path / "raw.jsonl")
    record = types.SimpleNamespace(to_json=lambda: {"group": "a"})

    class SignalledAtTheFlush:
        def __init__(self, out):
            self.out, self.write, self.close = out, out.write, out.close

        def flush(self):
            self.out.flush()
            interrupt(signal.SIGINT, None)

    try:
        with recorder:
            recorder.add(record)
            recorder._out = SignalledAtTheFlush(recorder._out)
            with pytest.raises(KeyboardInterrupt):
                recorder.add(record)
            clear_interrupt()  # raised once; the CLI would end here
        assert recorder.count == 2 == (tmp_path / "raw.jsonl").read_text().count("\n")
        recorder.add(record)  # a worker thread's request done after the run ended: not written
        assert recorder.count == 2
    finally:
        clear_interrupt()


def _dead() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


def _targets(tmp_path: Path) -> list[tuple[str, str]]:
    (tmp_path / "old.jsonl").write_text("keep me\n")
    (tmp_path / "folder").mkdir()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    cases = [
        ("/dev/full", "already exists (not a regular file)"),
        (str(tmp_path / "folder"), "already exists (a folder)"),
        (str(tmp_path / "old.jsonl"), "already exists (a file)"),
        ("/proc/tokenloop-save", "can't write"),
        ("/no/such/folder/raw.jsonl", "folder /no/such/folder does not exist"),
    ]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append((str(locked / "raw.jsonl"), "can't write it (Permission denied)"))
    return cases


def test_latency_refuses_a_save_target_it_cant_write_before_sending_anything(capsys, tmp_path):
    for target, message in _targets(tmp_path):
        code, out, err = cli(
            capsys, "latency", "--url", _dead(), "--max-tokens", "2", "--points", "2", "--save", target
        )
        assert code == 2 and f"--save {target}: " in err and message in err, (target, err)
        assert "can't reach" not in err and err.count("\n") == 1
    assert (tmp_path / "old.jsonl").read_text() == "keep me\n"


@pytest.mark.parametrize("target", ["/dev/full", "/proc/tokenloop-save", "EXISTING"])
def test_train_refuses_a_save_target_it_cant_write_before_training(capsys, tmp_path, target):
    if target == "EXISTING":
        target = str(tmp_path / "model.txt")
        Path(target).write_text("keep me")
    code, out, err = cli(capsys, "train", "--save", target, "--model", "/no/such/model")
    assert code == 2 and f"--save {target}: " in err and "--model" not in err, err


def test_train_refuses_a_learning_rate_that_can_only_give_nan(capsys):
    for lr in ("1e30", "2", "inf", "nan"):
        code, out, err = cli(capsys, "train", "--lr", lr, "--model", "/no/such/model")
        assert code == 2 and "--lr" in err and "Traceback" not in err, (lr, err)


class _Full:
    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        pass

    def close(self):
        pass


def test_a_late_write_failure_ends_the_writing_not_the_run(tmp_path):
    record = streamed.Stream(2, "hi", chunks=[streamed.Chunk(1.0, 1, True), streamed.Chunk(2.0, 1, True)])
    recorder = streamed.Recorder(tmp_path / "raw.jsonl")
    with recorder:
        recorder.add(record)
        recorder._out = _Full()
        recorder.add(record)
        recorder.add(record)
    assert recorder.count == 1 and "No space left on device" in recorder.said()
    assert len(streamed.load(tmp_path / "raw.jsonl")) == 1


def test_a_run_that_completes_nothing_leaves_no_file_behind(tmp_path):
    with streamed.Recorder(tmp_path / "raw.jsonl"):
        pass
    assert not (tmp_path / "raw.jsonl").exists()
    with pytest.raises(UsageError, match="already exists"):
        streamed.open_new(tmp_path)


def test_saved_records_round_trip(tmp_path):
    record = streamed.Stream(2, [1, 2], group="length 2", chunks=[streamed.Chunk(1.5, 1, True)], usage={"a": 1})
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(record.to_json()) + "\n")
    assert streamed.load(path)[0] == record


@settings(max_examples=200, deadline=1000)
@given(st.integers(1, 10**9), st.integers(1, 10**9), st.integers(1, 10**9))
def test_a_run_is_refused_by_arithmetic_before_its_work_list_is_built(max_tokens, points, repeats):
    from tokenloop.latency import budget

    try:
        budget.check("http://127.0.0.1:9/v1", max_tokens, points, repeats)
    except UsageError:
        return
    assert points * repeats + budget.loop_rounds(repeats) * max_tokens <= budget.MAX_RUN
    assert len(budget.output_lengths(max_tokens, points)) <= points


@settings(max_examples=200, deadline=1000)
@given(st.integers(1, 10**9), st.integers(1, 10**9))
def test_a_staircase_is_refused_by_arithmetic_before_its_schedule_is_built(points, repeats):
    from tokenloop.cost import staircase

    try:
        staircase.check(10**9, points, repeats, 10**9)
    except UsageError:
        return
    assert len(staircase.schedule(staircase.lengths(10**9, points), repeats)) <= staircase.MAX_WORK


def test_a_chart_that_fails_after_the_run_is_said_and_the_results_still_print(capsys, tmp_path, monkeypatch):
    from tokenloop import charts

    def full(*args, **kwargs):  # the disk filled while the run went on
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(charts, "latency_chart", full)
    with fake_vllm(FakeVLLM(end_after=10**9, stream_text=True)) as url:
        code, out, err = cli(capsys, "latency", "--url", url, "--max-tokens", "3", "--points", "2", "--repeats", "1",
                             "--plot", str(tmp_path / "l.png"), "--save", str(tmp_path / "raw.jsonl"))  # fmt: skip
    assert code == 1 and "No space left on device" in err and "the numbers above stand" in err, err
    assert "TTFT" in out and "chart written" not in out and "requests written to" in out
    assert len(streamed.load(tmp_path / "raw.jsonl")) >= 2
