"""Where a client's time to first token goes: the server's own queue and prefill, and the rest.

vLLM counts, per finished request, the time it waited to be scheduled (`queue_time`) and the time
from being scheduled to its first token (`prefill_time`), as Prometheus histograms on `/metrics`
(vllm/v1/metrics/loggers.py), beside its prefix-cache queries and hits and how full the KV cache
is. Reading `/metrics` just before and just after our requests, the histograms' added sum over
added count is the server's mean for those requests, and

    client-side overhead = client TTFT - (server queue + server prefill)

is what neither phase explains: the HTTP and API layers, tokenizing the prompt, the first chunk's
trip. The numbers are server-wide: another client's request finishing in the same window lands in
them too. So each window also checks that nothing was running or waiting before and after it and
that the server finished exactly our requests; otherwise the result says so.

llama.cpp has no such histograms by default but sends its own `timings` (prompt_ms) with each
stream's last chunk: the prefill per request, with no queue.

Metric names come from `backends.server.metrics.ALIASES` only.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..backends.server import Client
from ..backends.server.metrics import Snapshot, scrape
from ..errors import ServerError
from ..measure.streamed import Stream

SETTLE_S = 1.0  # how long to wait for the server to count a request it has already answered


@dataclass
class Tally:
    """The server's own numbers, summed over the windows our requests ran in."""

    sent: int = 0  # requests we sent inside the windows
    counted: float = 0.0  # requests the server finished inside them
    queue_s: float = 0.0
    prefill_s: float = 0.0
    server_ttft_s: float = 0.0
    server_ttft_n: float = 0.0
    prefix_queries: float = 0.0
    prefix_hits: float = 0.0
    kv_usage_peak: float | None = None
    running_peak: float | None = None  # the gauges' highest reading while a Watch sampled them
    waiting_peak: float | None = None
    waited_samples: int = 0  # readings with a request waiting, of `samples`
    samples: int = 0
    preemptions: float = 0.0
    itl_buckets: list | None = None  # the ITL histogram's buckets added in the windows
    busy: bool = False  # something else was running, waiting or finishing in a window
    windows: int = 0

    def add(self, before: Snapshot | None, after: Snapshot | None, sent: int) -> None:
        """One window: `before` and `after` around `sent` requests of ours."""
        if before is None or after is None or after.histogram_delta(before, "queue_time") is None:
            return
        self.windows += 1
        self.sent += sent
        queue, prefill = after.histogram_delta(before, "queue_time"), after.histogram_delta(before, "prefill_time")
        self.counted += queue[1]
        self.queue_s += queue[0]
        self.prefill_s += prefill[0] if prefill else 0.0
        ttft = after.histogram_delta(before, "ttft")
        if ttft:
            self.server_ttft_s, self.server_ttft_n = self.server_ttft_s + ttft[0], self.server_ttft_n + ttft[1]
        self.prefix_queries += after.delta(before, "prefix_queries") or 0.0
        self.prefix_hits += after.delta(before, "prefix_hits") or 0.0
        self.preemptions += after.delta(before, "preemptions") or 0.0
        added = after.buckets_delta(before, "itl")
        if added:
            old = self.itl_buckets or [(bound, 0.0) for bound, _ in added]
            self.itl_buckets = [(bound, a + b) for (bound, a), (_, b) in zip(old, added)]
        self.busy |= queue[1] != sent or any(
            (snap.value(key) or 0) > 0 for snap in (before, after) for key in ("running", "waiting")
        )

    def peak(self, kv_usage: float | None) -> None:
        if kv_usage is not None:
            self.kv_usage_peak = max(self.kv_usage_peak or 0.0, kv_usage)

    def sample(self, snap: Snapshot) -> None:
        """One reading of the gauges while requests run (a Watch calls it)."""
        self.peak(snap.value("kv_usage"))
        running, waiting = snap.value("running"), snap.value("waiting")
        self.samples += 1
        if running is not None:
            self.running_peak = max(self.running_peak or 0.0, running)
        if waiting is not None:
            self.waiting_peak = max(self.waiting_peak or 0.0, waiting)
            self.waited_samples += waiting > 0

    def report(self, client_ttfts_ms: Sequence[float]) -> dict | None:
        """Client TTFT beside the server's queue and prefill (means, ms); None without /metrics."""
        if not self.windows or not self.counted or not client_ttfts_ms:
            return None
        n = self.counted
        client = statistics.fmean(client_ttfts_ms)
        queue, prefill = 1000 * self.queue_s / n, 1000 * self.prefill_s / n
        return {
            "source": "/metrics",
            "requests": self.sent,
            "server_counted": int(n),
            "client_ttft_ms": client,
            "queue_ms": queue,
            "prefill_ms": prefill,
            "server_ttft_ms": 1000 * self.server_ttft_s / self.server_ttft_n if self.server_ttft_n else None,
            "overhead_ms": client - queue - prefill,
            "prefix_cache_queries": int(self.prefix_queries),
            "prefix_cache_hits": int(self.prefix_hits),
            "prefix_hit_rate": self.prefix_hits / self.prefix_queries if self.prefix_queries else None,
            "kv_usage_peak": self.kv_usage_peak,
            "running_peak": self.running_peak,
            "waiting_peak": self.waiting_peak,
            "waited_share": self.waited_samples / self.samples if self.samples else None,
            "preemptions": int(self.preemptions),
            "server_wide": self.busy,
        }


def settled(client: Client, before: Snapshot | None, sent: int) -> Snapshot | None:
    """`/metrics` once the server has counted our `sent` requests (it may count a moment after the
    last chunk left), or as it is after SETTLE_S."""
    if before is None:
        return None
    deadline = time.monotonic() + SETTLE_S
    while True:
        after = scrape(client)
        done = after.histogram_delta(before, "queue_time") if after else None
        if done is None or done[1] >= sent or time.monotonic() > deadline:
            return after
        time.sleep(0.02)


class Watch:
    """Reads `/metrics` every `every_s` seconds on a thread while a block runs, keeping the peaks of
    the KV-cache use, running and waiting requests (gauges: they fall back to 0 as soon as the
    requests end): `with Watch(client, tally):`."""

    def __init__(self, client: Client, tally: Tally, every_s: float = 0.5):
        self.client, self.tally, self.every_s = client, tally, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                snap = scrape(self.client)
            except ServerError:  # a failed side reading must not stop the measurement
                return
            if snap is None:
                return
            self.tally.sample(snap)

    def __enter__(self) -> Watch:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def from_timings(streams: Sequence[Stream]) -> dict | None:
    """llama.cpp's per-response `timings`: its prompt (prefill) time beside the client's TTFT."""
    pairs = [(s.ttft_ms, s.server["prompt_ms"]) for s in streams if s.server and "prompt_ms" in s.server]
    if not pairs:
        return None
    client, prefill = statistics.fmean(p[0] for p in pairs), statistics.fmean(p[1] for p in pairs)
    return {
        "source": "llama.cpp timings",
        "requests": len(pairs),
        "client_ttft_ms": client,
        "queue_ms": None,
        "prefill_ms": prefill,
        "overhead_ms": client - prefill,
        "server_wide": False,
    }
