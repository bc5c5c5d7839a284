"""A server's Prometheus `/metrics`, read into numbers under one set of names.

Engines name the same fact differently, and vLLM renamed its own over time (`gpu_cache_usage_perc`
became `kv_cache_usage_perc` in 0.10; `gpu_prefix_cache_*` went the same way). `ALIASES` is the one
table that knows the names: a key (`"kv_usage"`) maps to the sample names that carry it, newest
first. Everything else asks for keys.

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

from .client import Client

ALIASES: dict[str, tuple[str, ...]] = {
    # occupancy and scheduler state (gauges)
    "kv_usage": (
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
        "sglang:token_usage",
        "llamacpp:kv_cache_usage_ratio",
    ),
    "running": ("vllm:num_requests_running", "sglang:num_running_reqs", "llamacpp:requests_processing"),
    "waiting": ("vllm:num_requests_waiting", "sglang:num_queue_reqs", "llamacpp:requests_deferred"),
    # counters
    "preemptions": ("vllm:num_preemptions_total", "vllm:num_preemptions"),
    "prefix_queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    "prefix_hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    "prompt_tokens": ("vllm:prompt_tokens_total", "llamacpp:prompt_tokens_total"),
    "generation_tokens": ("vllm:generation_tokens_total", "llamacpp:tokens_predicted_total"),
    "cached_prompt_tokens": ("vllm:prompt_tokens_cached_total",),
    "prompt_seconds": ("llamacpp:prompt_seconds_total",),
    "decode_seconds": ("llamacpp:tokens_predicted_seconds_total",),
    # histograms (read as sum and count)
    "queue_time": ("vllm:request_queue_time_seconds",),
    "prefill_time": ("vllm:request_prefill_time_seconds",),
    "decode_time": ("vllm:request_decode_time_seconds",),
    "ttft": ("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds"),
    "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
    "e2el": ("vllm:e2e_request_latency_seconds", "sglang:e2e_request_latency_seconds"),
    "iteration_tokens": ("vllm:iteration_tokens_total",),
    # info (labels)
    "cache_config": ("vllm:cache_config_info",),
}

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


def parse(text: str) -> Snapshot:
    """Prometheus text exposition -> Snapshot. Lines it can't read are skipped, never fatal."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        samples.append(Sample(name, _labels(labels or ""), number))
    return Snapshot(tuple(samples))


def _labels(text: str) -> dict[str, str]:
    found = {}
    for key, raw in _LABEL.findall(text):
        found[key] = re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], raw)
    return found


def scrape(client: Client) -> Snapshot | None:
    """The server's `/metrics` now; None when it serves none (llama-server without --metrics, a
    gateway that hides it). An unreachable server raises as every call does."""
    text = client.text("/metrics")
    return None if text is None else parse(text)
