"""Lesson 7's in-process experiments on the embedded model, run through `model/from_scratch.py`'s forward.

- `causal_check`: prefill n tokens into one KV cache and n + 1 into another, then compare the keys
  and values of the first n tokens in every layer. The causal mask means token i only ever looks at
  tokens 0..i, so appending a token cannot change them: the difference is exactly 0, and caching
  them is exact, not an approximation.
- `cache_bytes`: what that cache really holds, from the tensors' own `nbytes`, per token.
- `on_backend` and `bytes_on_backend`: the two, run on an in-process backend's weights, as the
  lesson page's steps 1 and 4 show them (and `tokenloop lesson --markdown` writes them).

Both need the weights in `model/from_scratch.py`'s form (a plain Llama); they are read once per model folder.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from ..measure import provenance
from ..measure.filler import token_ids
from ..model import estimates, from_scratch
from ..model.config import Shape
from . import kv_capacity

CAUSAL_TOKENS = 40  # K and V of the first 40 tokens, with and without a 41st
BYTES_TOKENS = 64  # the cache whose tensors are weighed


@functools.lru_cache(maxsize=1)
def scratch_model(folder: str) -> from_scratch.Model:
    """The from-scratch model for a folder, read once (a second copy of the weights, float32)."""
    return from_scratch.load(Path(folder))


def prefilled(model: from_scratch.Model, ids: list[int]) -> from_scratch.KVCache:
    cache = from_scratch.new_cache(model)
    from_scratch.prefill(model, ids, cache)
    return cache


def causal_check(model: from_scratch.Model, ids: list[int]) -> dict:
    """K and V of the first n = len(ids) - 1 tokens, computed with and without the last token."""
    n = len(ids) - 1
    start = time.perf_counter()
    short, long = prefilled(model, ids[:n]), prefilled(model, ids)
    per_layer = []
    for (k_short, v_short), (k_long, v_long) in zip(short.layers, long.layers):
        # (G, n, d) against the first n positions of (G, n + 1, d)
        per_layer.append(
            {
                "k": float((k_short - k_long[:, :n]).abs().max()),
                "v": float((v_short - v_long[:, :n]).abs().max()),
            }
        )
    return {
        "tokens": n,
        "layers": len(per_layer),
        "max_abs_diff_k": max(p["k"] for p in per_layer),
        "max_abs_diff_v": max(p["v"] for p in per_layer),
        "per_layer": per_layer,
        "ms": (time.perf_counter() - start) * 1000,
        "cache": cache_bytes(model, long),
    }


def cache_bytes(model: from_scratch.Model, cache: from_scratch.KVCache) -> dict:
    """Bytes the cache's tensors hold, per token, beside the config's prediction."""
    held = sum(k.nbytes + v.nbytes for k, v in cache.layers)
    dtype = str(cache.layers[0][0].dtype).removeprefix("torch.")
    shape = Shape.from_config(model.config)
    return {
        "tokens": cache.length,
        "bytes": held,
        "bytes_per_token": held / cache.length,
        "dtype": dtype,
        "predicted_bytes_per_token": estimates.kv_bytes_per_token(shape, dtype),
        "formula": f"2 × {shape.layers} layers × {shape.kv_heads} KV heads × {shape.head_dim} × "
        f"{estimates.bytes_per_value(dtype)} B ({dtype})",
    }


def readable(backend) -> bool:
    """Whether the backend's weights sit in a folder `model/from_scratch.py` can read (a GGUF file cannot)."""
    folder = getattr(backend, "model_dir", None)
    return folder is not None and Path(folder).is_dir()


def on_backend(backend, tokens: int = CAUSAL_TOKENS) -> dict:
    """Step 1 on an in-process backend's weights, with where it ran."""
    model = scratch_model(backend.model_dir)
    return {**causal_check(model, token_ids(backend, tokens + 1)), "source": provenance.embedded(backend)}


def bytes_on_backend(backend, tokens: int = BYTES_TOKENS) -> dict:
    """Step 4 in process: the config's prediction beside what the cache's tensors hold."""
    model = scratch_model(backend.model_dir)
    return {
        "predicted": kv_capacity.prediction(Shape.from_config(model.config)),
        "measured": cache_bytes(model, prefilled(model, token_ids(backend, tokens))),
        "source": provenance.embedded(backend),
    }
