"""A model's numbers, computed from its config alone: parameters, work per step, KV cache size.

These are the estimates the staircase puts beside its measured times, and the costs training
puts beside its measured ones. All pure functions of a `Shape` (model/config.py: read from a
transformers config or a plain dict) or of a parameter count, so they can be checked by hand:

    parameters      embeddings + layers × (attention + MLP + 2 norms) + final norm (+ output head if untied)
    FLOPs per step  2 × (weights a token passes through) × tokens processed      (one multiply + one add)
                    + 4 × layers × heads × head_dim × (query, key) pairs         (scores Q·K and mix with V)
                    + 2 × hidden × vocab                                         (logits for the last position only)
    KV bytes/token  2 (K and V) × layers × kv_heads × head_dim × bytes per value
    training        per token 6N FLOPs (forward 2N, backward 4N) against inference's 2N; memory: weights,
                    a gradient per weight, AdamW's two moments per weight, and the saved activations

A decoder-only Llama is assumed (the embedded model and most open models): attention projections
q, k, v, o; a gated MLP of three matrices; RMSNorm with one weight vector.
"""

from __future__ import annotations

from .config import Shape

BYTES_PER_VALUE = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


def attention_weights(s: Shape) -> int:
    """q and o are hidden × (heads·head_dim); k and v are hidden × (kv_heads·head_dim)."""
    return 2 * s.dim * s.heads * s.head_dim + 2 * s.dim * s.kv_heads * s.head_dim


def mlp_weights(s: Shape) -> int:
    """gate, up (hidden → intermediate) and down (intermediate → hidden)."""
    return 3 * s.dim * s.intermediate


def layer_weights(s: Shape) -> int:
    """The matrices every token passes through in one layer (norms are not matrix work)."""
    return attention_weights(s) + mlp_weights(s)


def parameters(s: Shape) -> int:
    embeddings = s.vocab * s.dim
    per_layer = layer_weights(s) + 2 * s.dim  # + two RMSNorm weight vectors
    head = 0 if s.tied else s.vocab * s.dim
    return embeddings + s.layers * per_layer + s.dim + head  # + final norm


def attention_pairs(new: int, past: int) -> int:
    """(query, key) pairs a causal forward computes: new token i (1-based) sees past + i keys."""
    return new * past + new * (new + 1) // 2


def flops_per_step(s: Shape, new: int, past: int = 0) -> float:
    """FLOPs of one forward that runs `new` tokens with `past` tokens already in the KV cache.

    No cache: new = n, past = 0 (the whole sequence again). With cache: new = 1, past = n - 1.
    Only the last position's logits are computed (what the loop needs)."""
    linear = 2 * s.layers * layer_weights(s) * new
    attention = 4 * s.layers * s.heads * s.head_dim * attention_pairs(new, past)
    logits = 2 * s.dim * s.vocab
    return float(linear + attention + logits)


def kv_cache_bytes(layers: int, kv_heads: int, head_dim: int, tokens: int, dtype_bytes: int) -> int:
    """A key and a value vector per layer, per key/value head, per token."""
    return 2 * layers * kv_heads * head_dim * tokens * dtype_bytes


def kv_bytes_per_token(s: Shape, dtype: str = "float32") -> int:
    """What the KV cache holds per token, in `dtype`."""
    return kv_cache_bytes(s.layers, s.kv_heads, s.head_dim, 1, bytes_per_value(dtype))


def bytes_per_value(dtype: str) -> int:
    name = str(dtype).removeprefix("torch.")
    if name not in BYTES_PER_VALUE:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(BYTES_PER_VALUE)}")
    return BYTES_PER_VALUE[name]


def generation_flops(s: Shape, length: int, cached: bool) -> float:
    """Total work to reach a sequence of `length` tokens one step at a time, from one token.

    Step n sees n tokens. Without a cache it runs all n (a sum that grows like n², the
    staircase); with a cache it runs one token against n - 1 cached (grows like n)."""
    if cached:
        return sum(flops_per_step(s, 1, n - 1) for n in range(1, length + 1))
    return sum(flops_per_step(s, n, 0) for n in range(1, length + 1))


def estimate(s: Shape, max_len: int, dtype: str = "float32") -> dict:
    """The numbers the staircase prints beside its measurements (JSON-ready)."""
    per_token = kv_bytes_per_token(s, dtype)
    return {
        "parameters": parameters(s),
        "flops_per_step_uncached_at_max": flops_per_step(s, max_len, 0),
        "flops_per_step_cached": flops_per_step(s, 1, max_len - 1),
        "kv_bytes_per_token": per_token,
        "kv_bytes_at_max": per_token * max_len,
        "total_flops_uncached": generation_flops(s, max_len, cached=False),
        "total_flops_cached": generation_flops(s, max_len, cached=True),
        "dtype": str(dtype).removeprefix("torch."),
    }


# --- training vs inference, from the parameter count N ------------------------------------------
def matmul_params(total: int, embedding: int, tied: bool) -> int:
    """Parameters that take part in a matrix multiply for every token.

    The input embedding is a table lookup, not a multiply; with tied weights the same matrix is
    also the output layer (a multiply), so then every parameter counts."""
    return total if tied else total - embedding


def forward_flops(params: int, tokens: int) -> float:
    """About 2 FLOPs per parameter per token: one multiply and one add."""
    return 2.0 * params * tokens


def train_step_flops(params: int, tokens: int) -> float:
    """Forward (2N) + backward (4N: gradients for the activations and for the weights) per token."""
    return 6.0 * params * tokens


def train_memory(params: int, dtype_bytes: int, activations: int = 0) -> dict[str, int]:
    """Weights + a gradient per weight + AdamW's two moments per weight (+ saved activations)."""
    weights = params * dtype_bytes
    out = {"weights": weights, "gradients": weights, "optimizer": 2 * weights, "activations": activations}
    out["total"] = sum(out.values())
    return out


def inference_memory(params: int, dtype_bytes: int, kv_cache: int) -> dict[str, int]:
    """Weights + the KV cache of the tokens seen so far. No gradients, no optimizer state."""
    weights = params * dtype_bytes
    return {"weights": weights, "kv_cache": kv_cache, "total": weights + kv_cache}
