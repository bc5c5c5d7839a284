"""A server's Prometheus `/metrics`, read into numbers under one set of names.

Engines name the same fact differently, and vLLM renamed its own over time (`gpu_cache_usage_perc`
became `kv_cache_usage_perc` in 0.10; `gpu_prefix_cache_*` went the same way). `FAMILIES` is the
one table that knows the names: a key (`"kv_usage"`) maps to the sample names that carry it, newest
first, the old names with the version that renamed them, and the flag a family waits for
(`ALIASES` is the names alone). Everything else asks for keys; `tokenloop probe` lists, from the
same table, which families a server has (`roll_call`).

The exposition format, as the engines send it:

    # HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
    # TYPE vllm:num_preemptions_total counter
    vllm:num_preemptions_total{engine="0",model_name="m"} 2.0
    vllm:request_queue_time_seconds_sum{engine="0",model_name="m"} 4.81
    vllm:request_queue_time_seconds_count{engine="0",model_name="m"} 12.0
    vllm:cache_config_info{block_size="128",num_gpu_blocks="17",...} 1.0

Counters and gauges are summed over their samples (one per engine rank); a histogram is read as
its `_sum` and `_count`; an info metric is its labels.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from . import numbers
from .client import Client

HUGE = 1e30  # a counter may pass 1e15 (bytes read on a busy GPU); nothing real nears this
MAX_METRICS = 4 << 20  # a busy vLLM sends ~100 KB; a page far larger is not read (None, as if absent)


@dataclass(frozen=True)
class Family:
    """One fact a server publishes, under every name it has had (newest first). `renamed`: an old
    vLLM name and the minor version that deprecated it (vLLM's rule: deprecated in X.Y, hidden in
    X.Y+1 unless the server runs with `--show-hidden-metrics-for-version=X.Y`, gone in X.Y+2).
    `flag`: the vLLM server flag without which the family is not published at all."""

    names: tuple[str, ...]
    renamed: tuple[tuple[str, str], ...] = ()
    flag: str | None = None


# The one table of metric names. Everything else asks for a key ("kv_usage").
FAMILIES: dict[str, Family] = {
    # occupancy and scheduler state (gauges)
    "kv_usage": Family(
        (
            "vllm:kv_cache_usage_perc",
            "vllm:gpu_cache_usage_perc",
            "sglang:token_usage",
            "llamacpp:kv_cache_usage_ratio",
        ),
        renamed=(("vllm:gpu_cache_usage_perc", "0.10"),),
    ),
    "running": Family(("vllm:num_requests_running", "sglang:num_running_reqs", "llamacpp:requests_processing")),
    "waiting": Family(("vllm:num_requests_waiting", "sglang:num_queue_reqs", "llamacpp:requests_deferred")),
    # counters
    "preemptions": Family(("vllm:num_preemptions_total", "vllm:num_preemptions")),
    "prefix_queries": Family(
        ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
        renamed=(("vllm:gpu_prefix_cache_queries_total", "0.10"),),
    ),
    "prefix_hits": Family(
        ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
        renamed=(("vllm:gpu_prefix_cache_hits_total", "0.10"),),
    ),
    "prompt_tokens": Family(("vllm:prompt_tokens_total", "llamacpp:prompt_tokens_total")),
    "generation_tokens": Family(("vllm:generation_tokens_total", "llamacpp:tokens_predicted_total")),
    "cached_prompt_tokens": Family(("vllm:prompt_tokens_cached_total",)),
    "prompt_seconds": Family(("llamacpp:prompt_seconds_total",)),
    "decode_seconds": Family(("llamacpp:tokens_predicted_seconds_total",)),
    "estimated_read_bytes": Family(("vllm:estimated_read_bytes_per_gpu_total",), flag="--enable-mfu-metrics"),
    # histograms (read as sum and count, and buckets)
    "queue_time": Family(("vllm:request_queue_time_seconds",)),
    "prefill_time": Family(("vllm:request_prefill_time_seconds",)),
    "decode_time": Family(("vllm:request_decode_time_seconds",)),
    "ttft": Family(("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds")),
    "itl": Family(
        ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
        renamed=(("vllm:time_per_output_token_seconds", "0.11"),),
    ),
    "e2el": Family(("vllm:e2e_request_latency_seconds", "sglang:e2e_request_latency_seconds")),
    "iteration_tokens": Family(("vllm:iteration_tokens_total",)),
    "kv_block_lifetime": Family(("vllm:kv_block_lifetime_seconds",), flag="--kv-cache-metrics"),
    # info (labels)
    "cache_config": Family(("vllm:cache_config_info",)),
}
ALIASES: dict[str, tuple[str, ...]] = {key: family.names for key, family in FAMILIES.items()}

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})?\s+(\S+)(?:\s+\S+)?\s*$")
_LABEL = re.compile(rf'\s*({_NAME})\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Snapshot:
    """One reading of `/metrics`."""

    samples: tuple[Sample, ...]

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def _named(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name]

    def value(self, key: str) -> float | None:
        """A counter or gauge, summed over its samples (engine ranks); None when the server has none."""
        for name in ALIASES[key]:
            found = [s.value for s in self._named(name) if not math.isnan(s.value)]
            if found:
                return sum(found)
        return None

    def histogram(self, key: str) -> tuple[float, float] | None:
        """(sum, count) of a histogram; None when the server has none."""
        for name in ALIASES[key]:
            total, count = self._named(f"{name}_sum"), self._named(f"{name}_count")
            if count:
                return sum(s.value for s in total), sum(s.value for s in count)
        return None

    def info(self, key: str) -> dict[str, str] | None:
        """The labels of an info metric (e.g. vLLM's cache_config_info); None when absent."""
        for name in ALIASES[key]:
            found = self._named(name)
            if found:
                return dict(found[0].labels)
        return None

    def delta(self, before: Snapshot, key: str) -> float | None:
        """How much a counter moved since `before` (None when either reading lacks it)."""
        now, then = self.value(key), before.value(key)
        return None if now is None or then is None else now - then

    def histogram_delta(self, before: Snapshot, key: str) -> tuple[float, float] | None:
        """(sum, count) added to a histogram since `before`."""
        now, then = self.histogram(key), before.histogram(key)
        return None if now is None or then is None else (now[0] - then[0], now[1] - then[1])

    def buckets(self, key: str) -> list[tuple[float, float]] | None:
        """A histogram's cumulative buckets [(upper bound, count)], summed over engine ranks; the
        +Inf bucket last. None when the server has none."""
        for name in ALIASES[key]:
            found: dict[float, float] = {}
            for s in self._named(f"{name}_bucket"):
                bound = _bound(s.labels.get("le"))
                if bound is not None:
                    found[bound] = found.get(bound, 0.0) + s.value
            if found:
                return sorted(found.items())
        return None

    def buckets_delta(self, before: Snapshot, key: str) -> list[tuple[float, float]] | None:
        """The buckets added since `before` (both readings must have them, with the same bounds)."""
        now, then = self.buckets(key), before.buckets(key)
        if now is None or then is None or [b for b, _ in now] != [b for b, _ in then]:
            return None
        return [(bound, n - m) for (bound, n), (_, m) in zip(now, then)]


def _bound(label: str | None) -> float | None:
    """A bucket's upper bound: a finite number, or the last bucket's +Inf."""
    if isinstance(label, str) and label.strip() in ("+Inf", "Inf", "inf", "+inf"):
        return math.inf
    return numbers.number(label, -numbers.BIG, text=True)


def quantile(buckets: list[tuple[float, float]], q: float) -> tuple[float, float, float] | None:
    """Prometheus' `histogram_quantile` on cumulative buckets: (the estimate, the bounds of the
    bucket it falls in). Inside a bucket the estimate is a straight line between its bounds, so it
    is only known to within the bucket's width. None without observations."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):  # past the last finite bound: all Prometheus can say is that bound
                return lower, lower, bound
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + share * (bound - lower), lower, bound
        lower, below = bound, count
    return None


def _minor(version: str | None) -> tuple[int, int] | None:
    match = re.match(r"v?(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def roll_call(snap: Snapshot, version: str | None = None) -> list[dict]:
    """Every family tokenloop reads that the server's engine could publish, and what this server
    does with it: `present`, `renamed` (published under a newer name than some dashboards know;
    the old one `hidden` behind --show-hidden-metrics-for-version, or gone), `off` (waiting for a
    flag), or `absent`. Which engine: the prefix its own sample names carry (vllm:, sglang:, ...)."""
    names = snap.names()
    bare = {n.removesuffix(suffix) for n in names for suffix in ("_sum", "_count", "_bucket")} | names
    engines = {n.split(":", 1)[0] for n in bare if ":" in n}
    at = _minor(version)
    rows = []
    for key, family in FAMILIES.items():
        own = [n for n in family.names if n.split(":", 1)[0] in engines]
        if not own:
            continue
        found = next((n for n in own if n in bare), None)
        row = {"key": key, "name": found or own[0], "status": "present" if found else "absent", "detail": ""}
        for old, deprecated in family.renamed:
            if old == found:
                row["detail"] = f"under its old name (renamed to {own[0]} in {deprecated})"
                continue
            if found is None:
                continue
            then = _minor(deprecated)
            row["status"], row["old_name"] = "renamed", old
            if at is None or then is None:
                row["detail"] = f"was {old} (deprecated in {deprecated}; this server's version is unknown)"
            elif at <= then:
                row["detail"] = f"was {old}: deprecated in {deprecated}, still published here"
            elif at == (then[0], then[1] + 1):
                row["status"] = "hidden"
                row["detail"] = (
                    f"was {old}: hidden in this version; --show-hidden-metrics-for-version={deprecated} "
                    "brings it back for old dashboards"
                )
            else:
                row["detail"] = f"was {old}: deprecated in {deprecated}, removed since; read {found}"
        if found is None and family.flag:
            row["status"], row["flag"] = "off", family.flag
            row["detail"] = f"off until the server starts with {family.flag}"
        elif found and family.flag and snap.value(key) == 0 and (snap.value("generation_tokens") or 0) > 0:
            row["status"], row["flag"] = "off", family.flag  # vLLM 0.32 registers the MFU counters always
            row["detail"] = f"published, but it counts nothing until the server starts with {family.flag}"
        rows.append(row)
    return rows


def parse(text: str) -> Snapshot:
    """Prometheus text exposition -> Snapshot. Lines it can't read are skipped, never fatal, and so
    are values `numbers.number` refuses (NaN, ±Inf, 1e400: no counter or gauge tokenloop reads
    holds one; a bucket's `le="+Inf"` is a label, kept)."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or len(line) > 4096:
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        checked = numbers.number(value, -HUGE, HUGE, text=True)
        if checked is None:
            continue
        samples.append(Sample(name, _labels(labels or ""), float(checked)))
    return Snapshot(tuple(samples))


def _labels(text: str) -> dict[str, str]:
    found = {}
    for key, raw in _LABEL.findall(text):
        found[key] = re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], raw)
    return found


def scrape(client: Client) -> Snapshot | None:
    """The server's `/metrics` now; None when it serves none (llama-server without --metrics, a
        gateway that hides it, a page over MAX_METRICS: the metrics are optional, so an oversized page
    never ends a run). An unreachable server raises as every call does."""
    text = client.text("/metrics", limit=MAX_METRICS)
    return None if text is None else parse(text)
