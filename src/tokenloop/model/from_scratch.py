"""The embedded model's forward pass, written out in plain PyTorch.

SmolLM2-135M is a Llama-style decoder. This file reads its weights straight from the cached
safetensors file and computes the same logits as the transformers model, using nothing but
tensor arithmetic, so that no step of the loop is hidden in a library:

    token ids -> embedding
              -> 30 x [ RMSNorm -> attention -> add back,  RMSNorm -> MLP -> add back ]
              -> RMSNorm -> output head -> one score per vocabulary token, at every position

Shapes in the comments: T = tokens in this call, S = tokens attention looks at (cached + new),
D = hidden size (576), H = query heads (9), G = key/value heads (3), d = head size (64),
F = MLP inner size (1536), V = vocabulary (49152). One sequence at a time, no batch dimension.

The generation loop sits at the bottom, twice: `generate_uncached` is the bare loop, the whole
sequence every step (the lesson's pseudo-code); `generate_cached` splits into `prefill` and
`decode_one`, keeping each layer's keys and values so a step only pushes one new token through.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import ModelConfig
from .weights import read_safetensors


# --- what the config says --------------------------------------------------------------------
class Config(ModelConfig):
    """The config's numbers (model/config.py): vocab V, dim D, layers, heads H, kv_heads G, head_dim d,
    intermediate F, eps, rope_theta, tied, stop_ids. Only the plain Llama is computed here."""

    @classmethod
    def from_folder(cls, folder: Path) -> Config:
        return cls.plain_llama(folder, "model/from_scratch.py")


# --- the weights -----------------------------------------------------------------------------
@dataclass
class Layer:
    attn_norm: torch.Tensor  # (D,)
    wq: torch.Tensor  # (H*d, D)  queries
    wk: torch.Tensor  # (G*d, D)  keys: fewer heads than queries (grouped-query attention)
    wv: torch.Tensor  # (G*d, D)  values
    wo: torch.Tensor  # (D, H*d)  mixes the heads back together
    mlp_norm: torch.Tensor  # (D,)
    w_gate: torch.Tensor  # (F, D)
    w_up: torch.Tensor  # (F, D)
    w_down: torch.Tensor  # (D, F)


@dataclass
class Model:
    config: Config
    embed: torch.Tensor  # (V, D): row i is token i's vector
    layers: list[Layer]
    norm: torch.Tensor  # (D,)
    head: torch.Tensor  # (V, D): the embedding itself when tied
    folder: Path  # where the weights came from (tokenizer.json sits beside them)


def load(folder: str | Path | None = None) -> Model:
    """Read the weights from a model folder (default: the embedded model's cached folder)."""
    from . import files as model_files

    folder = model_files.resolve(None) if folder is None else Path(folder)
    config = Config.from_folder(folder)
    w = read_safetensors(folder, "model/from_scratch.py")  # a missing tensor is a one-line ModelError

    def get(name: str) -> torch.Tensor:
        return w[name].float()

    def layer(i: int) -> Layer:
        p = f"model.layers.{i}."
        return Layer(
            get(p + "input_layernorm.weight"),
            get(p + "self_attn.q_proj.weight"),
            get(p + "self_attn.k_proj.weight"),
            get(p + "self_attn.v_proj.weight"),
            get(p + "self_attn.o_proj.weight"),
            get(p + "post_attention_layernorm.weight"),
            get(p + "mlp.gate_proj.weight"),
            get(p + "mlp.up_proj.weight"),
            get(p + "mlp.down_proj.weight"),
        )

    embed = get("model.embed_tokens.weight")
    head = embed if config.tied or "lm_head.weight" not in w else get("lm_head.weight")
    return Model(config, embed, [layer(i) for i in range(config.layers)], get("model.norm.weight"), head, folder)


# --- the pieces of one layer -----------------------------------------------------------------
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Scale each token's vector to a root-mean-square of 1, then by a learned weight per channel."""
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rope_angles(config: Config, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles, (T, d). Channel pair i turns at speed theta^(-2i/d)."""
    d = config.head_dim
    speeds = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2).float() / d))  # (d/2,): fast to slow
    angles = positions.float()[:, None] * speeds[None, :]  # (T, d/2): position x speed
    angles = torch.cat([angles, angles], dim=-1)  # (T, d): channel i pairs with channel i + d/2
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn each (i, i + d/2) channel pair of x (heads, T, d) by its position's angle."""
    half = x.shape[-1] // 2
    first, second = x[..., :half], x[..., half:]
    return x * cos + torch.cat([-second, first], dim=-1) * sin


def attention(
    x: torch.Tensor,
    layer: Layer,
    config: Config,
    cos: torch.Tensor,
    sin: torch.Tensor,
    past: tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Each token looks back over itself and the tokens before it. Returns (output, this layer's keys/values)."""
    T, H, G, d = x.shape[0], config.heads, config.kv_heads, config.head_dim
    q = (x @ layer.wq.T).view(T, H, d).transpose(0, 1)  # (H, T, d)
    k = (x @ layer.wk.T).view(T, G, d).transpose(0, 1)  # (G, T, d)
    v = (x @ layer.wv.T).view(T, G, d).transpose(0, 1)  # (G, T, d)
    q, k = rotate(q, cos, sin), rotate(k, cos, sin)  # positions enter here, and only here
    if past is not None:  # the KV cache: keys and values of the earlier tokens, already rotated
        k, v = torch.cat([past[0], k], dim=1), torch.cat([past[1], v], dim=1)  # (G, S, d)
    S = k.shape[1]
    # Grouped-query attention: every key/value head is shared by H/G query heads.
    k_all, v_all = k.repeat_interleave(H // G, dim=0), v.repeat_interleave(H // G, dim=0)  # (H, S, d)
    scores = q @ k_all.transpose(1, 2) / math.sqrt(d)  # (H, T, S): how well each query matches each key
    # Causal mask: the new tokens sit at positions S-T .. S-1 and may not look at later ones.
    future = torch.ones(T, S, dtype=torch.bool).triu(S - T + 1)  # (T, S): True above the diagonal
    scores = scores.masked_fill(future, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (H, T, S): each row sums to 1
    out = (weights @ v_all).transpose(0, 1).reshape(T, H * d)  # (T, H*d): a weighted mix of values, heads side by side
    return out @ layer.wo.T, (k, v)  # (T, D)


def mlp(x: torch.Tensor, layer: Layer) -> torch.Tensor:
    """SwiGLU: a SiLU-activated gate multiplies an 'up' projection, then 'down' back to D."""
    gate = torch.nn.functional.silu(x @ layer.w_gate.T)  # (T, F)
    return (gate * (x @ layer.w_up.T)) @ layer.w_down.T  # (T, D)


# --- the whole model -------------------------------------------------------------------------
@dataclass
class KVCache:
    """Per layer, the rotated keys and values of every token seen so far: (G, S, d) each."""

    layers: list[tuple[torch.Tensor, torch.Tensor] | None] = field(default_factory=list)

    @property
    def length(self) -> int:
        return 0 if not self.layers or self.layers[0] is None else self.layers[0][0].shape[1]


def new_cache(model: Model) -> KVCache:
    return KVCache([None] * model.config.layers)


@torch.inference_mode()
def forward(model: Model, ids: Sequence[int], cache: KVCache | None = None) -> torch.Tensor:
    """Logits (T, V) for `ids`; with a cache, `ids` are the tokens after the ones it holds."""
    c = model.config
    start = cache.length if cache is not None else 0
    x = model.embed[torch.as_tensor(list(ids))]  # (T, D): look up each token's vector
    cos, sin = rope_angles(c, torch.arange(start, start + x.shape[0]))
    for i, layer in enumerate(model.layers):
        past = cache.layers[i] if cache is not None else None
        out, kv = attention(rms_norm(x, layer.attn_norm, c.eps), layer, c, cos, sin, past)
        if cache is not None:
            cache.layers[i] = kv
        x = x + out  # residual: attention adds to the stream, it doesn't replace it
        x = x + mlp(rms_norm(x, layer.mlp_norm, c.eps), layer)  # and so does the MLP
    return rms_norm(x, model.norm, c.eps) @ model.head.T  # (T, V): a score for every token, at every position


# --- the loop, two ways (greedy) -------------------------------------------------------------
def generate_uncached(model: Model, ids: Sequence[int], max_new: int) -> Iterator[int]:
    """The bare loop, the lesson's pseudo-code in ten lines: run the whole sequence every step,
    take the last position's argmax, append, stop at an end token. No cache, no records, no
    sampler: `tokenloop.loop.generate` is this loop with those added."""
    ids = list(ids)
    for _ in range(max_new):
        logits = forward(model, ids)  # (T, V): the whole sequence, again
        next_id = int(logits[-1].argmax())  # only the last position predicts the next token
        yield next_id
        ids.append(next_id)  # append and go round again
        if next_id in model.config.stop_ids:
            return


def prefill(model: Model, ids: Sequence[int], cache: KVCache) -> torch.Tensor:
    """Run the prompt once, filling the cache; returns the last position's logits (V,)."""
    return forward(model, ids, cache)[-1]


def decode_one(model: Model, token: int, cache: KVCache) -> torch.Tensor:
    """Run one new token against the cached keys/values; returns its logits (V,)."""
    return forward(model, [token], cache)[-1]


def generate_cached(model: Model, ids: Sequence[int], max_new: int) -> Iterator[int]:
    """The same loop with a KV cache: the prompt once, then one token per step."""
    cache = new_cache(model)
    logits = prefill(model, ids, cache)
    for step in range(max_new):
        next_id = int(logits.argmax())
        yield next_id
        if next_id in model.config.stop_ids or step == max_new - 1:
            return
        logits = decode_one(model, next_id, cache)
