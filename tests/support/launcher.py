"""Servers on a free 127.0.0.1 port for the tests: a process (`ServerProcess`, a context manager
that starts it, waits until it answers, and stops its whole process group), or an ASGI app such as
tokenloop's own in a thread of this process (`app_serving`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server process on a free port of 127.0.0.1.

    `command` may hold "{port}", replaced by the port chosen; the process is ready when `ready`
    (a path such as "/health") answers 200 within `start_s` seconds. `url` is its OpenAI base URL
    (with /v1), `root` the same without; its output goes to `log`, shown when it fails to start.

        with ServerProcess(command, "/health", tmp) as served:   # started and ready
            ...                                                  # stopped on leaving

    `start()` launches without waiting (vLLM warms up while other tests run), `wait_ready()` waits
    later. `pause()`, `resume()` and `kill()` are faults a test may inflict on it.
    """

    def __init__(
        self,
        command: list[str],
        ready: str,
        logs: Path,
        env: dict | None = None,
        start_s: float = 90,
        base: dict[str, str] | None = None,
    ):
        """`env` changes `base` (this process's environment by default; None removes a variable)."""
        self.port = free_port()
        self.command = [part.replace("{port}", str(self.port)) for part in command]
        self.ready, self.start_s = ready, start_s
        changed = {**(os.environ if base is None else base), **(env or {})}
        self.env = {k: v for k, v in changed.items() if v is not None}
        self.log = Path(logs) / f"server-{self.port}.log"
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = self.root + "/v1"
        self.process: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        """Launch the process in its own session (so that stopping it stops its children too)."""
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=self.env
            )
        return self

    def wait_ready(self) -> None:
        """Until `ready` answers 200; a test failure with the log's end if it exits or takes too long."""
        deadline = time.monotonic() + self.start_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"the server exited with {self.process.returncode} before it was ready:\n{self.log_tail()}",
                    pytrace=False,
                )
            try:
                if httpx.get(self.root + self.ready, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        pytest.fail(f"the server was not ready after {self.start_s:.0f} s: {self.log_tail()}", pytrace=False)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:]

    def stop(self) -> None:
        """SIGTERM to the whole process group (vLLM runs its engine in child processes), SIGKILL
        if it is still there after 15 s. A paused server is resumed first, so it can exit."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def kill(self) -> None:
        """SIGKILL: the server dies with no goodbye."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def __enter__(self) -> ServerProcess:
        if self.process is None:
            self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def app_serving(app):
    """A tokenloop web app (or any ASGI app) on a free 127.0.0.1 port, in a thread of this process;
    yields its root URL and stops it on leaving."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)
