"""The embedded model on the fast path: a compact Llama forward with a static KV cache.

The same weights as the default backend, without transformers on the way: the model is a few
free functions over tensors read straight from the safetensors file (the way gpt-fast keeps
its model small), so a decode step is about 25 tensor operations a layer and nothing else.

- Weights in float32, bfloat16, int8 or int4 (`quantized.py`). The running sum of each token
  (the residual stream), the norms and attention stay in float32; only the matmuls see the
  narrow format. int8/int4 weights are quantized on first use and kept in the user cache.
- Fused matmuls: queries, keys and values come out of one matrix, the MLP's gate and up
  projections out of another, so a layer is four matmuls instead of seven.
- A static KV cache: each layer's keys and values go into tensors allocated ahead of time
  (doubling when full), so a step writes one slot instead of concatenating.

`FastBackend` holds the same `Tokenizer` as the default `EmbeddedBackend` (encode, decode, chat
template, from the model folder); only the model underneath differs.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ModelError, UsageError
from ..model import files as model_files
from ..model.config import ModelConfig
from ..model.weights import read_safetensors
from ..scores import Scores
from . import model_name, quantized, reusable
from .tokenizer import TextByTokenizer, Tokenizer


# --- the model -------------------------------------------------------------------------------
@dataclass
class Layer:
    attn_norm: torch.Tensor
    qkv: quantized.Linear  # (H*d + 2*G*d, D): queries, keys, values in one matmul
    wo: quantized.Linear  # (D, H*d)
    mlp_norm: torch.Tensor
    gate_up: quantized.Linear  # (2*F, D): the MLP's gate and up projections in one matmul
    down: quantized.Linear  # (D, F)


@dataclass
class Model:
    config: ModelConfig  # sizes, norm eps, rotary base, context, end tokens (model/config.py)
    layers: list[Layer]
    norm: torch.Tensor
    head: quantized.Linear  # (V, D): the output head
    embed: quantized.Linear  # (V, D): the embedding (the head itself when they are tied)
    dtype: str  # the weights' format
    inv_freq: torch.Tensor  # (d/2,): how fast each rotary channel pair turns

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights one decode step reads (the embedding contributes a single row)."""
        per_layer = sum(m.nbytes for layer in self.layers for m in (layer.qkv, layer.wo, layer.gate_up, layer.down))
        return per_layer + self.head.nbytes


def head_format(dtype: str) -> str:
    return "int8" if dtype == "int4" else dtype  # the output head stays int8: int4 costs it too much


def stored_weights(folder: Path, config: ModelConfig, dtype: str) -> dict[str, torch.Tensor]:
    """Every tensor of the model in `dtype`'s stored form, by name (fused matrices included)."""
    w = read_safetensors(folder, "the fast path")
    get = w.__getitem__  # a tensor the checkpoint lacks is a one-line ModelError

    out: dict[str, torch.Tensor] = {"norm": get("model.norm.weight").float()}

    def put(name: str, weight: torch.Tensor, fmt: str) -> None:
        try:
            out.update({f"{name}.{part}": t for part, t in quantized.tensors(weight, fmt).items()})
        except ValueError as e:  # e.g. rows that int4's groups of 32 don't divide
            raise ModelError(f"{folder}: {e}; try another --dtype") from e

    for i in range(config.layers):
        p = f"model.layers.{i}."
        out[f"{i}.attn_norm"] = get(p + "input_layernorm.weight").float()
        out[f"{i}.mlp_norm"] = get(p + "post_attention_layernorm.weight").float()
        put(f"{i}.qkv", torch.cat([get(p + f"self_attn.{n}_proj.weight") for n in "qkv"]), dtype)
        put(f"{i}.wo", get(p + "self_attn.o_proj.weight"), dtype)
        put(f"{i}.gate_up", torch.cat([get(p + "mlp.gate_proj.weight"), get(p + "mlp.up_proj.weight")]), dtype)
        put(f"{i}.down", get(p + "mlp.down_proj.weight"), dtype)
    embed = get("model.embed_tokens.weight")
    put("head", w.get("lm_head.weight", embed), head_format(dtype))
    if "lm_head.weight" in w and not torch.equal(w["lm_head.weight"], embed):
        out["embed.weight"] = embed.float()  # not tied: the embedding is its own matrix
    return out


def packed_file(folder: Path, dtype: str) -> Path:
    """Where the int8/int4 form of a model folder is kept, so quantizing happens once."""
    weights = sorted(folder.glob("*.safetensors"))
    key = ":".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in weights)
    digest = hashlib.sha1(f"{key}:v{quantized.VERSION}".encode()).hexdigest()[:10]
    return model_files.cache_root() / "packed" / f"{folder.name}-{digest}-{dtype}.safetensors"


def load(folder: Path, dtype: str = "float32") -> Model:
    """Read a Llama checkpoint with its matrices in `dtype` (int8/int4: quantized once, then cached)."""
    from safetensors.torch import load_file, save_file

    config = ModelConfig.plain_llama(folder, "the fast path", hint="; leave out --dtype/--engine")
    cached = packed_file(folder, dtype) if dtype in ("int8", "int4") else None
    if cached is not None and cached.is_file():
        # Copied out of the file's buffer: the quantized kernels want their operands freshly allocated (aligned).
        w = {name: t.clone() for name, t in load_file(cached).items()}
    else:
        w = stored_weights(folder, config, dtype)
        if cached is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(f".{os.getpid()}.tmp")
                save_file(w, tmp)
                tmp.replace(cached)
            except OSError:
                pass  # a read-only cache only costs the quantizing again next time

    parts: dict[str, dict[str, torch.Tensor]] = {}  # "3.qkv" -> {"codes": ..., "scales_zeros": ...}
    for key, tensor in w.items():
        name, _, part = key.rpartition(".")
        parts.setdefault(name, {})[part] = tensor

    def matrix(name: str, fmt: str) -> quantized.Linear:
        return quantized.linear(parts[name], fmt)

    layers = [
        Layer(
            w[f"{i}.attn_norm"],
            matrix(f"{i}.qkv", dtype),
            matrix(f"{i}.wo", dtype),
            w[f"{i}.mlp_norm"],
            matrix(f"{i}.gate_up", dtype),
            matrix(f"{i}.down", dtype),
        )
        for i in range(config.layers)
    ]
    head = matrix("head", head_format(dtype))
    embed = quantized.Dense(w["embed.weight"]) if "embed.weight" in w else head
    d = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    return Model(config, layers, w["norm"], head, embed, dtype, inv_freq)


class StaticCache:
    """Every layer's keys and values, in tensors allocated ahead and filled up to `length`.

    Layer i's keys are `k[i]`, (1, G, capacity, d): the batch and head dimensions attention
    wants, so a step writes its slot and reads `k[i][:, :, :S]` without any reshaping.
    """

    def __init__(self, config: ModelConfig, capacity: int = 256):
        self.config, self.length, self.seen = config, 0, []
        size = (1, config.kv_heads, capacity, config.head_dim)
        self.k = [torch.zeros(size) for _ in range(config.layers)]
        self.v = [torch.zeros(size) for _ in range(config.layers)]

    @property
    def capacity(self) -> int:
        return self.k[0].shape[2]

    def reserve(self, n: int) -> None:
        """Make room for n positions, doubling the tensors when they are full."""
        capacity = self.capacity
        if n <= capacity:
            return
        while capacity < n:
            capacity *= 2
        for store in (self.k, self.v):
            for i, old in enumerate(store):
                store[i] = torch.zeros(1, old.shape[1], capacity, old.shape[3])
                store[i][:, :, : self.length] = old[:, :, : self.length]


def rope(model: Model, start: int, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin of the rotary angles for positions start .. start+T-1, each (T, d).

    Rotating channel pair (i, i + d/2) by angle a: x_i' = x_i cos a - x_{i+d/2} sin a and
    x_{i+d/2}' = x_{i+d/2} cos a + x_i sin a. With the halves of x swapped (a roll by d/2) and
    the sine's first half negated, that is x * cos + roll(x) * signed_sin.
    """
    angles = torch.arange(start, start + T, dtype=torch.float32)[:, None] * model.inv_freq  # (T, d/2)
    sin = angles.sin()
    return torch.cat([angles, angles], dim=-1).cos(), torch.cat([-sin, sin], dim=-1)


@torch.inference_mode()
def forward(
    model: Model, ids: Sequence[int], start: int = 0, cache: StaticCache | None = None, last_only: bool = True
) -> torch.Tensor:
    """Logits for `ids` sitting at positions start, start+1, ...: (V,) for the last one, or (T, V) for all.

    With a cache, the keys and values of positions < start are read from it and those of `ids`
    written into it; without, `ids` must be the whole sequence (start = 0).
    """
    s, T = model.config, len(ids)
    H, G, d = s.heads, s.kv_heads, s.head_dim
    narrow = quantized.activation_dtype(model.dtype)  # what the matmuls take
    x = model.embed.rows(torch.tensor(list(ids)))  # (T, D) float32: the running sum of each token
    cos, signed_sin = rope(model, start, T)
    S = start + T  # positions attention looks at
    mask, causal = None, T > 1
    if causal and start > 0:  # new tokens after cached ones: token i sees positions 0 .. start + i
        mask, causal = torch.ones(T, S, dtype=torch.bool).tril(start), False
    for i, layer in enumerate(model.layers):
        h = F.rms_norm(x, (s.dim,), layer.attn_norm, s.eps).to(narrow)
        qkv = layer.qkv(h).float().view(T, H + 2 * G, d).transpose(0, 1)[None]  # (1, H+2G, T, d): heads first
        qk = qkv[:, : H + G]  # positions enter queries and keys, not values
        qk = torch.addcmul(qk * cos, qk.roll(d // 2, -1), signed_sin)
        q, k, v = qk[:, :H], qk[:, H:], qkv[:, H + G :]
        if cache is not None:  # write this call's keys/values into their slots, read all of them
            cache.k[i][:, :, start:S], cache.v[i][:, :, start:S] = k, v
            k, v = cache.k[i][:, :, :S], cache.v[i][:, :, :S]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=True)  # (1, H, T, d)
        x = x + layer.wo(out[0].transpose(0, 1).reshape(T, H * d).to(narrow))
        h = F.rms_norm(x, (s.dim,), layer.mlp_norm, s.eps).to(narrow)
        gate, up = layer.gate_up(h).split(s.intermediate, dim=-1)
        x = x + layer.down(F.silu(gate) * up)
    if last_only:
        x = x[-1:]
    logits = model.head(F.rms_norm(x, (s.dim,), model.norm, s.eps).to(narrow)).float()
    return logits[0] if last_only else logits


# --- the backend -----------------------------------------------------------------------------
class FastBackend(TextByTokenizer):
    """The embedded model through `forward` above, with weights in `dtype`."""

    name = "embedded"
    in_process = True  # weights, cache and tokenizer in this process
    full_vocab = True
    max_top_k = None
    can_score = True  # all_logits: every position in one pass
    can_train = False  # no autograd here: the training demo loads the same weights into transformers
    picker = None  # the loop's own sampler picks
    gguf_file = None  # the weights come from a model folder (model_dir)

    @property
    def can_chat(self) -> bool:
        return bool(self.tokenizer.chat_template)

    def __init__(self, model: str | None = None, log=None, dtype: str = "int8"):
        if dtype not in quantized.DTYPES:
            raise UsageError(f"--dtype {dtype}: choose one of {', '.join(quantized.DTYPES)}")
        model_files.offline()
        self.folder = model_files.resolve(model, log)
        self.model_dir = str(self.folder)
        self.dtype = dtype
        self.net = load(self.folder, dtype)
        self.model = model_name(model)
        # config.json's end tokens and generation_config.json's
        self.tokenizer = Tokenizer.from_folder(self.folder, self.model, self.net.config.stop_ids)
        self.config = self.net.config  # the staircase's model numbers read it
        self.context_length = self.net.config.context
        self.vocab_size = self.net.config.vocab
        self.eos_ids = self.tokenizer.eos_ids  # the run's end tokens (a test may set its own)
        self.lock = threading.Lock()

    @property
    def engine(self) -> str:
        """What runs the model, and in which dtype: 'torch int8'."""
        return f"torch {self.dtype}"

    @property
    def weight_bytes(self) -> int:
        return self.net.weight_bytes

    kv_dtype = "float32"  # StaticCache keeps keys and values in float32, whatever the weights

    def new_cache(self) -> StaticCache:
        return StaticCache(self.net.config)

    def forward(self, ids: Sequence[int], cache: StaticCache | None = None, top_k: int = 8) -> Scores:
        """Scores for the token after `ids`, over the whole vocabulary."""
        with self.lock:
            if cache is None:  # no cache: the whole sequence through the model
                return Scores(forward(self.net, ids), tokens_in=len(ids))
            # KV cache: keep the slots of the prefix shared with the last call, run only the rest.
            keep = reusable(cache.seen, ids)
            cache.reserve(len(ids))
            logits = forward(self.net, ids[keep:], keep, cache)
            cache.length, cache.seen = len(ids), list(ids)
            return Scores(logits, tokens_in=len(ids) - keep)

    def all_logits(self, ids: Sequence[int]) -> torch.Tensor:
        """(T, V) logits at every position of `ids` (for the agreement check)."""
        with self.lock:
            return forward(self.net, ids, last_only=False)
