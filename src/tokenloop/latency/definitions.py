"""TTFT, TPOT and ITL as three benchmarking tools define them, from the same raw records
(`streamed.Stream`), side by side: why two dashboards disagree about one server.

Each definition is read from the tool's own source (checked 2026-12):

- vLLM `vllm bench serve` (vllm/benchmarks/lib/endpoint_request_func.py, vllm/benchmarks/serve.py):
  a chunk counts once it holds a non-empty `choices` list, a chat's role-only chunk included.
  TTFT: request sent -> first such chunk. ITL: every gap between two such chunks, pooled over all
  requests. E2EL: sent -> the last such chunk. TPOT per request: (E2EL - TTFT) / (output tokens - 1),
  the tokens from the server's usage.
- GuideLLM (vllm-project/guidellm, src/guidellm/schemas/request_stats.py, `GenerativeRequestStats`):
  TTFT: sent -> the first token iteration (a chunk with text). ITL per request: (last token -
  first token) / (output tokens - 1), the first token excluded. TPOT per request: (last token -
  sent) / output tokens, the first token and its wait included. Request latency: sent -> the
  response's end.
- NVIDIA AIPerf, the successor of genai-perf (ai-dynamo/aiperf, src/aiperf/metrics/types/
  ttft_metric.py, inter_token_latency_metric.py, inter_chunk_latency_metric.py): only "content
  responses" count (a role-only or usage-only chunk does not). TTFT: sent -> first content response.
  ITL per request: (request latency - TTFT) / (output tokens - tokens of the first chunk), that
  chunk's tokens 1 unless the server counts them per chunk. ICL: the gaps between content responses.
  It has no metric named TPOT.

Pure functions: records in, numbers out.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..measure.bench_stats import summary
from ..measure.streamed import Stream

TOOLS = {
    "vllm": "vllm bench serve",
    "guidellm": "GuideLLM",
    "aiperf": "AIPerf / genai-perf",
}
# (tool, metric) -> one line: what the number is
DEFINITIONS = {
    ("vllm", "ttft"): "sent -> first chunk with a choice (a chat's role-only chunk counts)",
    ("vllm", "tpot"): "per request: (last chunk - first chunk) / (output tokens - 1)",
    ("vllm", "itl"): "every gap between two chunks, pooled over all requests",
    ("guidellm", "ttft"): "sent -> first chunk with text",
    ("guidellm", "tpot"): "per request: (last token - sent) / output tokens, TTFT included",
    ("guidellm", "itl"): "per request: (last token - first token) / (output tokens - 1)",
    ("aiperf", "ttft"): "sent -> first chunk with content",
    ("aiperf", "tpot"): "no such metric (its per-user tokens/s is 1 / ITL)",
    ("aiperf", "itl"): "per request: (last content - TTFT) / (tokens - first chunk's tokens)",
}
METRICS = ("ttft", "tpot", "itl")


def vllm(s: Stream) -> dict:
    times = [c.ms for c in s.chunks]  # every chunk that held a choice
    tokens = s.tokens
    return {
        "ttft": times[0],
        "tpot": (times[-1] - times[0]) / (tokens - 1) if tokens > 1 else None,
        "itl": [b - a for a, b in zip(times, times[1:])],
    }


def guidellm(s: Stream) -> dict:
    times = [c.ms for c in s.chunks if c.text] or s.arrivals_ms
    tokens = s.tokens
    return {
        "ttft": times[0],
        "tpot": times[-1] / tokens if tokens else None,
        "itl": [(times[-1] - times[0]) / (tokens - 1)] if tokens > 1 else [],
    }


def aiperf(s: Stream) -> dict:
    content = [c for c in s.chunks if c.text] or [c for c in s.chunks if c.tokens]
    tokens, first = s.tokens, max(content[0].tokens, 1)
    decode = tokens - first if tokens - first >= 1 else tokens - 1  # its fallback: one token first
    return {
        "ttft": content[0].ms,
        "tpot": None,
        "itl": [(content[-1].ms - content[0].ms) / decode] if tokens > 1 else [],
        "icl": [b.ms - a.ms for a, b in zip(content, content[1:])],
    }


RULES = {"vllm": vllm, "guidellm": guidellm, "aiperf": aiperf}


def side_by_side(streams: Sequence[Stream]) -> dict:
    """{tool: {metric: summary}} over the records: mean, median, std, p90, p99 under vLLM's key names."""
    out = {}
    for tool, rule in RULES.items():
        per = [rule(s) for s in streams if s.arrivals_ms]
        row = {}
        for name in METRICS:
            values = [v for r in per for v in (r[name] if name == "itl" else [r[name]]) if v is not None]
            row[name] = summary(name, values)
        if tool == "aiperf":
            row["icl"] = summary("icl", [v for r in per for v in r["icl"]])
        out[tool] = row
    return out
