"""A model's config, read in one place: its sizes, what a forward needs besides, and what it refuses.

Everything that reads a Llama config goes through here: the from-scratch forward (`model/from_scratch.py`),
the fast path (`backends/fast.py`), the staircase's estimates (`model/estimates.py`) and the cost of
a training step (`training.py`). The source is a model folder, a config.json dict or a
transformers config object; the keys are Hugging Face's:

    vocab_size, hidden_size, num_hidden_layers,
    num_attention_heads, intermediate_size      required (a one-line ModelError if one is missing)
    num_key_value_heads       default: num_attention_heads (every query head has its own keys)
    head_dim                  default: hidden_size // num_attention_heads
    tie_word_embeddings       default: false
    rms_norm_eps              default: 1e-6 (as transformers' LlamaConfig)
    rope_theta                in rope_parameters (transformers 5) or rope_scaling, else at the top; default 10000
    max_position_embeddings   default: 2048
    eos_token_id              an id or a list; a folder's generation_config.json adds its own

A forward written out by hand (`plain_llama`) computes one architecture: Llama without biases,
SiLU in the MLP, default rotary positions (no scaling such as "llama3" or "yarn").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Self

from ..errors import ModelError


@dataclass(frozen=True)
class Shape:
    """The sizes: all that counting parameters, FLOPs and KV-cache bytes needs."""

    vocab: int  # V
    dim: int  # D, the hidden size: the width of every token's vector
    layers: int
    heads: int  # H, query heads
    kv_heads: int  # G, key/value heads: fewer than H with grouped-query attention
    head_dim: int  # d
    intermediate: int  # F, the MLP's inner size
    tied: bool  # the output head reuses the embedding matrix

    @classmethod
    def from_config(cls, config: Any, where: str = "the model's config") -> Self:
        """From a transformers config object, a config.json dict, or a config already read here."""
        values = vars(config) if isinstance(config, Shape) else read(getter(config), where)
        return cls(**{f.name: values[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class ModelConfig(Shape):
    """The sizes and the rest of what a forward written out by hand needs."""

    eps: float  # RMSNorm's guard against dividing by zero
    rope_theta: float  # the base of the rotary angles (100000 for SmolLM2)
    context: int  # the longest sequence the model was trained on
    stop_ids: frozenset[int]  # the end-of-sequence token ids

    @classmethod
    def from_folder(cls, folder: Path) -> Self:
        return cls.from_config(folder_config(folder), f"{folder}/config.json")

    @classmethod
    def plain_llama(cls, folder: Path, who: str, hint: str = "") -> Self:
        """`from_folder` for `who`, a forward written out by hand: a plain Llama, or a one-line ModelError."""
        config = folder_config(folder)
        get = getter(config)
        biases = get("attention_bias") or get("mlp_bias")
        if get("model_type") != "llama" or biases or get("hidden_act", "silu") != "silu":
            raise ModelError(f"{folder}: {who} only knows the plain Llama architecture (no biases){hint}")
        kind = rope_type(get)
        if kind != "default":
            raise ModelError(f"{folder}: {who} only knows the default rotary positions, not {kind!r}{hint}")
        return cls.from_config(config, f"{folder}/config.json")


Getter = Callable[..., Any]  # get(key, default=None), over a dict or a config object


def getter(config: Any) -> Getter:
    if isinstance(config, Mapping):
        return config.get
    return lambda key, default=None: getattr(config, key, default)


def folder_config(folder: Path) -> dict:
    """config.json as a dict, with generation_config.json's end tokens added to its own."""
    file = folder / "config.json"
    try:
        config = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{file} could not be read as JSON ({type(e).__name__}: {e})") from e
    generation = folder / "generation_config.json"
    if generation.is_file():
        extra = end_ids(json.loads(generation.read_text()).get("eos_token_id"))
        config["eos_token_id"] = sorted(end_ids(config.get("eos_token_id")) | extra)
    return config


def end_ids(value: Any) -> set[int]:
    """eos_token_id is one id, a list of them, or absent."""
    return {int(value)} if isinstance(value, int) else {int(v) for v in value or []}


def rope_type(get: Getter) -> str:
    rope = rope_settings(get)
    return rope.get("rope_type", rope.get("type", "default"))


def rope_settings(get: Getter) -> Mapping:
    """transformers 5 keeps the rotary settings in rope_parameters; older configs in rope_scaling."""
    return get("rope_parameters") or get("rope_scaling") or {}


def read(get: Getter, where: str) -> dict[str, Any]:
    """Every field of `ModelConfig`, by name, with the defaults above."""

    def need(key: str) -> int:
        value = get(key)
        if value is None:
            raise ModelError(f"{where} has no {key}; tokenloop reads Llama-style configs")
        return int(value)

    dim, heads = need("hidden_size"), need("num_attention_heads")
    return {
        "vocab": need("vocab_size"),
        "dim": dim,
        "layers": need("num_hidden_layers"),
        "heads": heads,
        "kv_heads": int(get("num_key_value_heads") or heads),
        "head_dim": int(get("head_dim") or dim // heads),
        "intermediate": need("intermediate_size"),
        "tied": bool(get("tie_word_embeddings", False)),
        "eps": float(get("rms_norm_eps") or 1e-6),
        "rope_theta": float(rope_settings(get).get("rope_theta") or get("rope_theta") or 10000.0),
        "context": int(get("max_position_embeddings") or 2048),
        "stop_ids": frozenset(end_ids(get("eos_token_id"))),
    }
