"""What one training step costs beside one inference forward over the same tokens: time, FLOPs
and bytes, measured (gradients, optimizer state, saved activations, the KV cache, RSS) and
computed from the model's numbers (`model/estimates.py`)."""

from __future__ import annotations

import statistics

import torch

from ..model.estimates import (
    Shape,
    forward_flops,
    inference_memory,
    kv_cache_bytes,
    matmul_params,
    train_memory,
    train_step_flops,
)


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def cache_tensors(cache) -> list[torch.Tensor]:
    """The key and value tensors held by a transformers cache."""
    out = []
    for layer in getattr(cache, "layers", []):
        out += [t for t in vars(layer).values() if isinstance(t, torch.Tensor) and t.dim() == 4]
    return out


class SavedActivations:
    """Measures the bytes autograd keeps for the backward pass (weights themselves excluded)."""

    def __init__(self, model: torch.nn.Module):
        self.skip = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.seen: set[int] = set()
        self.bytes = 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in self.skip and storage.data_ptr() not in self.seen:
            self.seen.add(storage.data_ptr())
            self.bytes += storage.nbytes()
        return t

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)


def rss() -> int | None:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with accelerate
        return None
    return psutil.Process().memory_info().rss


def measure_cost(backend, model, ids: list[int], trace: list, activations: int, measured: dict) -> dict:
    """Time, FLOPs and bytes of one training step vs one inference forward over the same tokens."""
    shape = Shape.from_config(model.config)
    params = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    dtype_bytes = next(model.parameters()).element_size()
    n = matmul_params(params, embedding, tied)
    kv = kv_cache_bytes(shape.layers, shape.kv_heads, shape.head_dim, len(ids), dtype_bytes)
    with backend.lock, torch.inference_mode():  # the served model's real KV cache for these tokens
        cache = backend.lm(torch.tensor([ids]), use_cache=True, logits_to_keep=1).cache
    # The first step also allocates the optimizer state: the warm steps after it are the fair figure.
    warm = trace[1:] or trace
    train_ms = statistics.median(s.ms for s in warm)
    infer_ms = statistics.median(s.inference_ms for s in trace)
    return {
        "tokens": len(ids),
        "params": params,
        "matmul_params": n,
        "dtype_bytes": dtype_bytes,
        "train_step_ms": train_ms,
        "inference_forward_ms": infer_ms,
        "ratio": train_ms / infer_ms if infer_ms > 0 else 0.0,
        "train_forward_ms": statistics.median(s.forward_ms for s in warm),
        "train_backward_ms": statistics.median(s.backward_ms for s in warm),
        "train_optimizer_ms": statistics.median(s.optimizer_ms for s in warm),
        "flops_train_step": train_step_flops(n, len(ids)),
        "flops_inference_forward": forward_flops(n, len(ids)),
        "train_bytes": train_memory(params, dtype_bytes, activations),
        "inference_bytes": inference_memory(params, dtype_bytes, kv),
        "measured_bytes": {
            "gradients": measured.get("gradients"),  # sum of the .grad tensors after backward
            "optimizer": measured.get("optimizer"),  # sum of AdamW's state tensors
            "activations": activations,  # tensors autograd saved for backward (saved-tensor hooks)
            "kv_cache": tensor_bytes(cache_tensors(cache)),  # the served model's cache for these tokens
            "rss_growth": measured.get("rss_growth"),  # process RSS growth: copy + grads + AdamW state
        },
    }
