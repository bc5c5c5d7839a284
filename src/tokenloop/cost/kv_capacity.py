"""How big one token of KV cache is, and how many conversations fit: the config's prediction beside
what the server says it allocated (or, in process, what the cache's tensors hold).

vLLM reports its allocation as the labels of one info metric (`vllm:cache_config_info`, read by
`backends.server.metrics`), e.g. with `--kv-cache-memory-bytes 100663296` on the float32 model:

    block_size="128" num_gpu_blocks="17" kv_cache_size_tokens="2176"
    kv_cache_memory_bytes="100663296" kv_cache_max_concurrency="1.0625" cache_dtype="auto"

so bytes per token = kv_cache_memory_bytes ÷ kv_cache_size_tokens: a little over the config's
2 × layers × KV heads × head size × bytes, because whole blocks are allocated. Older versions
lack the size labels; then tokens = num_gpu_blocks × block_size.
"""

from __future__ import annotations

from ..backends.server import numbers
from ..backends.server.metrics import Snapshot
from ..errors import ServerError
from ..model import estimates
from ..model.config import Shape

# Bytes per number for the dtypes a KV cache is commonly kept in.
WIDTHS = {"float32": 4, "bfloat16 / float16": 2, "fp8": 1}


def number(labels: dict[str, str], key: str) -> float | None:
    """A numeric label, or None where it is absent, not a number ("None" in some versions), NaN,
    infinite or absurd (`numbers.number`: above 1e15, or 0 or less, means nothing here)."""
    found = numbers.number(labels.get(key), 0, text=True)
    return float(found) if found else None


def prediction(shape: Shape) -> dict:
    """The config's numbers per token, and their bytes in each common width."""
    values = estimates.kv_cache_bytes(shape.layers, shape.kv_heads, shape.head_dim, 1, 1)
    return {
        "values_per_token": values,
        "formula": f"2 × {shape.layers} layers × {shape.kv_heads} KV heads × {shape.head_dim}",
        "bytes_per_token": {name: values * width for name, width in WIDTHS.items()},
    }


def server_allocation(snapshot: Snapshot | None, max_model_len: int | None) -> dict:
    """The server's own KV allocation, from its cache_config_info labels."""
    labels = snapshot.info("cache_config") if snapshot is not None else None
    if labels is None:
        raise ServerError(
            "the server reports no KV cache configuration in /metrics (vLLM's vllm:cache_config_info): "
            "this step needs vLLM, with its metrics on"
        )
    block, blocks = number(labels, "block_size"), number(labels, "num_gpu_blocks")
    tokens = number(labels, "kv_cache_size_tokens") or (blocks * block if blocks and block else None)
    memory = number(labels, "kv_cache_memory_bytes")
    concurrency = number(labels, "kv_cache_max_concurrency")
    if concurrency is None and tokens and max_model_len:
        concurrency = tokens / max_model_len
    return {
        "block_size": block,
        "blocks": blocks,
        "tokens": tokens,
        "memory_bytes": memory,
        "bytes_per_token": memory / tokens if memory and tokens else None,
        "max_model_len": max_model_len,
        "conversations": concurrency,
        "cache_dtype": labels.get("cache_dtype"),
        "labels": labels,
        "unreadable": None if tokens else _said(labels),
    }


def _said(labels: dict[str, str]) -> str:
    """What the labels said in place of a cache size, for the note beside a missing number."""
    keys = ("kv_cache_size_tokens", "num_gpu_blocks", "block_size")
    said = ", ".join(f"{k}={labels.get(k, 'absent')!r}"[:60] for k in keys)
    return f"vllm:cache_config_info gives no usable cache size ({said})"


def bytes_per_number(allocated_per_token: float | None, values_per_token: int) -> float | None:
    """What the server spends per cached number: its dtype, read off its own allocation."""
    return allocated_per_token / values_per_token if allocated_per_token else None


def in_process(bytes_per_token: float, context_length: int) -> dict:
    """Conversations of the model's full context that this machine's free memory could hold as
    cache, if all of it did (the embedded model keeps one conversation's cache at a time)."""
    import psutil

    free = psutil.virtual_memory().available
    per_conversation = bytes_per_token * context_length
    return {
        "free_bytes": free,
        "bytes_per_conversation": per_conversation,
        "context_length": context_length,
        "conversations": free / per_conversation,
    }
