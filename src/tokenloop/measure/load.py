"""Many streamed requests at once, bounded: what batching does to one user's wait and to the total.

A `Plan` says everything before anything is sent: the requests (each a prompt and max_tokens), how
many may run at once, and a time cap after which no new request starts. `describe()` is the sentence
a user reads first. A plan refuses a server that is not on this machine (127.0.0.1, ::1, localhost)
unless the caller passes `consent=True`: load belongs on a server you run.

`run(client, model, plan)` sends them from `concurrency` threads over the one `Client`, each thread
taking the next request as soon as its last one ended (a closed loop, as `vllm bench serve
--max-concurrency` and GuideLLM's concurrent profile do); or, with a `rate`, sends each request at
its own arrival time whatever the others are doing (an open loop, as `vllm bench serve
--request-rate` and GuideLLM's poisson and constant profiles do), at most `concurrency` in flight. It reads the server's `/health` before and
after where it has one, and stops starting requests at the first 5xx or error. The result keeps
every request's raw record (`streamed.Stream`: sent time on the run's clock, each chunk's arrival
and tokens), so any metric can be computed afterwards.

    plan = Plan(url, [Request(prompt, 64)] * 16, concurrency=4, time_cap_s=60)
    print(plan.describe())
    result = run(client, model, plan)      # result.streams, result.wall_s, result.stopped
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from ..backends.server import Client
from ..backends.server.client import Refused
from ..errors import ServerError, UsageError
from .streamed import Stream, stream_once

LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
MAX_CONCURRENCY = 256
MAX_REQUESTS = 10_000
MAX_RATE = 1000.0  # requests a second
ARRIVALS = ("poisson", "constant")


@dataclass(frozen=True)
class Request:
    prompt: str
    max_tokens: int
    chat: bool = False
    cold: bool = False  # send it with fresh cache-off fields (`run`'s `fresh`), so no cached prefix serves it


@dataclass
class Plan:
    """What will be sent, checked before any request is."""

    url: str
    requests: list[Request]
    concurrency: int
    time_cap_s: float = 60.0
    group: str = ""  # the label each record carries
    consent: bool = False  # the caller has agreed to load a server that is not on this machine
    rate: float | None = None  # requests a second, sent at their arrival times (None: the closed loop)
    arrivals: str = "poisson"  # with a rate: exponential gaps (poisson) or even ones (constant)
    seed: int = 0  # the poisson arrivals' seed: a rerun sends at the same times

    def __post_init__(self):
        if self.rate is not None and not 0 < self.rate <= MAX_RATE:
            raise UsageError(f"a rate must be above 0 and at most {MAX_RATE:g} requests a second, not {self.rate:g}")
        if self.arrivals not in ARRIVALS:
            raise UsageError(f"arrivals are {' or '.join(ARRIVALS)}, not {self.arrivals!r}")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise UsageError(f"concurrency must be 1 to {MAX_CONCURRENCY}, not {self.concurrency}")
        if not 1 <= len(self.requests) <= MAX_REQUESTS:
            raise UsageError(f"a plan holds 1 to {MAX_REQUESTS} requests, not {len(self.requests)}")
        if not self.time_cap_s > 0:
            raise UsageError(f"--time-cap must be a number of seconds above 0, not {self.time_cap_s:g}")
        if not self.consent and not is_loopback(self.url):
            raise UsageError(
                f"{self.url} is not on this machine: concurrent load goes to 127.0.0.1 or localhost only, "
                "unless you add --allow-remote (load only a server you run)"
            )

    @property
    def output_tokens(self) -> int:
        return sum(r.max_tokens for r in self.requests)

    def describe(self) -> str:
        sizes = sorted({r.max_tokens for r in self.requests})
        lengths = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
        pace = (
            f"{self.concurrency} at a time"
            if self.rate is None
            else f"arriving at {self.rate:g} a second ({self.arrivals}"
            + (f", seed {self.seed}" if self.arrivals == "poisson" else "")
            + f"), at most {self.concurrency} in flight"
        )
        return (
            f"{len(self.requests)} streamed requests of {lengths} tokens ({self.output_tokens:,} in all) to "
            f"{self.url}, {pace}, none started after {self.time_cap_s:g} s"
        )


def arrival_offsets(n: int, rate: float, arrivals: str = "poisson", seed: int = 0) -> list[float]:
    """When each of `n` requests is sent, in seconds from the start: 1/rate apart (constant), or with
    exponential gaps of mean 1/rate (poisson: requests from many independent users), seeded."""
    if arrivals == "constant":
        return [i / rate for i in range(n)]
    rng, now, times = random.Random(seed), 0.0, []
    for _ in range(n):
        times.append(now)
        now += rng.expovariate(rate)
    return times


def is_loopback(url: str) -> bool:
    host = httpx.URL(url).host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Result:
    plan: Plan
    streams: list[Stream] = field(default_factory=list)  # completed requests, in the order they ended
    wall_s: float = 0.0  # first request sent -> last one ended
    stopped: str | None = None  # why requests were left unsent (time cap, a 5xx, an error)
    healthy: tuple[bool | None, bool | None] = (None, None)  # /health before and after (None: none there)


def run(client: Client, model: str, plan: Plan, on_done=None, fresh=None) -> Result:
    """Send the plan's requests, `plan.concurrency` at a time. `on_done(done, total)` after each;
    `fresh()`: the request fields that keep a cold request from any cached prefix (a new salt each
    call; `dialects.uncached_fields`)."""
    result = Result(plan)
    before = health(client)
    if before is False:
        raise ServerError(f"{client.root}/health says the server is not healthy: nothing was sent")
    pending = list(reversed(plan.requests))
    lock, errors = threading.Lock(), []
    start = time.perf_counter()

    def late() -> bool:  # under the lock: no new request after an error or past the time cap
        if errors:
            return True
        if time.perf_counter() - start > plan.time_cap_s:
            result.stopped = result.stopped or f"the time cap ({plan.time_cap_s:g} s) passed"
            return True
        return False

    def next_request() -> Request | None:
        with lock:
            return None if late() or not pending else pending.pop()

    def send(request: Request) -> bool:
        """One request, its record kept; False after an error (which stops the run)."""
        try:
            extra = fresh() if request.cold and fresh else None
            s = stream_once(
                client,
                model,
                request.prompt,
                request.max_tokens,
                extra,
                chat=request.chat,
                group=plan.group,
                clock=start,
            )
        except ServerError as e:
            with lock:
                errors.append(e)
            return False
        with lock:
            result.streams.append(s)
            if on_done:
                on_done(len(result.streams), len(plan.requests))
        return True

    def worker() -> None:  # the closed loop: the next request as soon as the last one ended
        while (request := next_request()) is not None and send(request):
            pass

    with ThreadPoolExecutor(plan.concurrency) as pool:
        if plan.rate is None:
            for _ in range(plan.concurrency):
                pool.submit(worker)
        else:  # the open loop: each request at its arrival time, at most `concurrency` in flight
            slots = threading.BoundedSemaphore(plan.concurrency)

            def arrive(request: Request) -> None:
                try:
                    send(request)
                finally:
                    slots.release()

            offsets = arrival_offsets(len(plan.requests), plan.rate, plan.arrivals, plan.seed)
            for offset, request in zip(offsets, plan.requests):
                time.sleep(max(0.0, start + offset - time.perf_counter()))
                slots.acquire()
                with lock:
                    if late():
                        slots.release()
                        break
                pool.submit(arrive, request)
    result.wall_s = time.perf_counter() - start
    if errors:
        first = errors[0]
        if not (isinstance(first, Refused) and first.status >= 500):
            raise first
        result.stopped = f"the server answered {first.status} ({first.server_message}): stopped there"
    result.healthy = (before, health(client))
    if before and result.healthy[1] is False:
        result.stopped = (result.stopped or "") + "; the server's /health failed after the run"
    return result


def health(client: Client) -> bool | None:
    """True when `/health` answers, False when it answers an error, None when the server has none."""
    try:
        status = client.status("/health")
    except ServerError:
        return False
    return None if status == 404 else status < 400
