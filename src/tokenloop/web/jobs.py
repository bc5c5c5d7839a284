"""Measurements that belong to the page that asked for them, and results kept for a revisit.

A measurement runs in a thread of its own as a `Job`, under its browser session (the lab's
cookie, `sessions.py`) and a key: `day07:context_cost` for a lesson's live step, the demo's name
(`training`, `staircase`, `server_staircase`) for a demo. The request that started it waits for it;
while it waits:

- the measurement reports each step through `Job.progress(done, total)`, which the page reads
  (`/api/live/kept`: "step 3 of 8, about 12 s left");
- when no page is left waiting (the request's client went away, or the page said goodbye on
  `pagehide`: `/api/live/stop`), the job is told to stop, and its next `progress` call raises
  `Cancelled`: no measurement outlives its page;
- a second request for the same key while it runs waits on the same job (no second run, no 409);
  one that comes while a stopped job winds down waits for it to end, then starts afresh.

A finished result is kept in the session (`Session.kept`) with the time it was measured, so a
revisit draws it without measuring again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import Busy

Progress = Callable[[int, int], None]
POLL_S = 0.1  # how often a waiting request checks that its client is still there
_jobs_lock = threading.Lock()


class Cancelled(Exception):
    """Raised inside a measurement, at its next step, once no page waits for it."""


@dataclass
class Job:
    key: str
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    total: int | None = None
    pages: list = field(default_factory=list)  # one entry per waiting request: the page's id (or None)
    stop: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    result: dict | None = None
    error: BaseException | None = None
    cancelled: bool = False

    def progress(self, done: int, total: int) -> None:
        """Called by the measurement after each step: records it, and stops the run once asked."""
        if self.stop.is_set():
            raise Cancelled(self.key)
        self.done, self.total = done, total

    def to_json(self) -> dict:
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done and self.total else None
        return {
            "done": self.done,
            "total": self.total,
            "elapsed_s": elapsed,
            "left_s": left,
            "stopping": self.stop.is_set(),
        }

    def run(self, measure: Callable[[Progress], dict], kept: dict) -> None:
        try:
            result = {**measure(self.progress), "measured_at": time.time()}
            kept[self.key] = result
            self.result = result
        except Cancelled:
            self.cancelled = True
        except BaseException as e:  # handed to the waiting request, which turns it into an answer
            self.error = e
        finally:
            self.finished.set()

    def leave(self, page: str | None, everyone: bool = False) -> None:
        """A waiting request went away (or, `everyone`, its page said goodbye): stop when none is left."""
        with _jobs_lock:
            while page in self.pages:
                self.pages.remove(page)
                if not everyone:
                    break
            if not self.pages and not self.finished.is_set():
                self.stop.set()


@dataclass
class Asker:
    """Who asks for a measurement: the request (to notice it going away), the browser's session,
    the lesson on the page and the page's own id (a reload is a new page)."""

    request: object
    session: object
    lesson: str | None  # None: the lesson whose step has this live key (the app's own first)
    page: str | None = None
    default: str = "day01"

    def key(self, live: str) -> str:
        return f"{self.lesson or home(live, self.default)}:{live}"


def home(live: str, default: str) -> str:
    """The lesson a live key belongs to: the app's own lesson if it has a step with it, else the
    first lesson that does."""
    from ..lessons import content

    names = [default] + [n for n in content.available() if n != default]
    return next((n for n in names if any(s.get("live") == live for s in content.load(n)["steps"])), default)


async def measured(asker: Asker, key: str, measure: Callable[[Progress], dict]) -> dict:
    """The measurement's result: started here, or joined if this session already runs it."""
    session = asker.session
    while True:
        with _jobs_lock:
            job = session.jobs.get(key)
            if job is None or job.finished.is_set():
                job = session.jobs[key] = Job(key)
                job.pages.append(asker.page)
                threading.Thread(
                    target=job.run, args=(measure, session.kept), daemon=True, name=f"measure {key}"
                ).start()
                break
            if not job.stop.is_set():  # the same measurement, running for this session: wait on it
                job.pages.append(asker.page)
                break
        await asyncio.to_thread(job.finished.wait, 60)  # a stopped run ends at its next step
    try:
        while not job.finished.is_set():
            if await asker.request.is_disconnected():
                break
            await asyncio.sleep(POLL_S)
    finally:
        job.leave(asker.page)
    if job.error is not None:
        raise job.error
    if job.result is None:
        raise Busy("the measurement was stopped before it finished: press Measure again")
    return job.result


def stop(session, page: str | None) -> list[str]:
    """The page is going away: stop what only it waits for. Returns the keys told to stop."""
    with _jobs_lock:
        running = [job for job in session.jobs.values() if not job.finished.is_set() and page in job.pages]
    for job in running:
        job.leave(page, everyone=True)
    return [job.key for job in running if job.stop.is_set()]


def kept(session, lesson: str | None) -> dict:
    """What this session measured for the lesson (by live key) and the demos, and what still runs."""

    def short(key: str) -> str | None:
        name, _, live = key.rpartition(":")
        return live if name in ("", lesson) else None

    results = {short(k): v for k, v in session.kept.items() if short(k)}
    running = {short(k): j.to_json() for k, j in session.jobs.items() if short(k) and not j.finished.is_set()}
    return {"results": results, "running": running}
