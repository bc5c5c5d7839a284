"""Backends: where the next-token scores come from.

Each backend lives in its own file behind the small `Backend` protocol below and is found
through the `BACKENDS` registry (name -> "module:Class"), imported only when used. What a
backend can do is declared on it (`in_process`, `full_vocab`, `max_top_k`, `can_score`,
`can_train`, `can_chat`, `picker`) and read elsewhere, never probed. A backend that picks for the
loop does so through the `Picker` contract (`picker.py`). The in-process backends share one
`Tokenizer` component (`tokenizer.py`). Nothing here imports torch, so the CLI can list the
engines without loading it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..scores import Scores
    from .picker import Picker

ENGINES = ("transformers", "torch", "onnxruntime", "llama.cpp")  # --engine: ways to run the embedded model
DTYPES = ("float32", "bfloat16", "int8", "int4")  # --dtype: weight formats of the torch engine
ORT_DTYPES = ("float32", "int4")  # the formats the onnxruntime engine builds
WEIGHTS_VERSION = 2  # bump when a stored form changes: cached weights and agreement results are keyed by it


class Backend(Protocol):
    name: str  # "embedded", "server", ...: the registry's key, for messages
    in_process: (
        bool  # True: the model runs in this process (its weights, cache and tokenizer are here); False: behind HTTP
    )
    model: str  # what the user sees as the model's name
    context_length: int
    eos_ids: frozenset[int]
    vocab_size: int | None  # None where the backend doesn't know it (a server)
    full_vocab: bool  # True: scores cover the whole vocabulary; False: top-k only
    max_top_k: int | None  # the most candidates it can return (None: no limit)
    can_score: bool  # has `all_logits(ids)`: every position's logits in one pass (score mode)
    can_train: bool  # holds a torch module whose weights a training step can change (`lm`)
    can_chat: bool  # can turn a conversation into a prompt (a chat template, or a server's chat endpoint)
    picker: Picker | None  # how a run picks: None is tokenloop's own sampler (see loop.generate)
    model_dir: str | None  # the Hugging Face model folder the weights came from (None: a server, or a GGUF file)
    gguf_file: str | None  # the GGUF file llama.cpp runs (None elsewhere); with model_dir, what demos load again
    config: Any  # the model's config (a transformers config or model_config.ModelConfig), for the model numbers; None if unknown

    def encode(self, text: str, chat: bool = False) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_text(self, token_id: int) -> str: ...

    def new_cache(self) -> Any: ...

    def forward(self, ids: Sequence[int], cache: Any = None, top_k: int = 8) -> Scores: ...


BACKENDS: dict[str, str] = {
    "embedded": "tokenloop.backends.embedded:EmbeddedBackend",
    "server": "tokenloop.backends.server:ServerBackend",
    "fast": "tokenloop.backends.fast:FastBackend",  # the embedded model on the fast path (--engine torch)
    "onnxruntime": "tokenloop.backends.ort:OrtBackend",  # the model as an ONNX graph (--engine onnxruntime)
    "llama.cpp": "tokenloop.backends.llamacpp:LlamaCppBackend",  # the GGUF in llama-cpp-python (--engine llama.cpp)
}


def model_name(model: str | None) -> str:
    """What the user sees as the model's name: the folder's or the GGUF file's."""
    from pathlib import Path

    from ..model import files as model_files

    if model is None:
        return model_files.DEFAULT_NAME
    path = Path(model)
    return path.stem if path.suffix.lower() == ".gguf" else path.resolve().name


def reusable(seen: Sequence[int], ids: Sequence[int]) -> int:
    """How many positions of a KV cache made for `seen` still hold for `ids`: the leading ids the
    two share, less one where they are all of `ids` (the last token goes through the model again,
    for its scores)."""
    if list(ids[: len(seen)]) == list(seen):  # the usual case: the cache's ids, and more
        shared = len(seen)
    else:
        shared = next((i for i, (x, y) in enumerate(zip(seen, ids)) if x != y), min(len(seen), len(ids)))
    return min(shared, len(ids) - 1)


def backend_class(name: str):
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
