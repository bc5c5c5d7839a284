"""Backends: where the next-token scores come from.

Each backend lives in its own file behind the small `Backend` protocol below and is found
through the `BACKENDS` registry (name -> "module:Class"), imported only when used. What a
backend can do is data (`full_vocab`, `max_top_k`), not `if` chains elsewhere.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import torch


@dataclass
class Scores:
    """What one forward pass says about the next token.

    `logits` are scores over a support: the whole vocabulary when `ids` is None (index == token
    id), or only the candidates in `ids` (a server's top-k), in which case the values are the
    server's log-probabilities and the mass outside them is unknown.
    """

    logits: torch.Tensor
    ids: torch.Tensor | None = None
    tokens_in: int = 0  # tokens the model processed to produce these scores
    extra: dict[str, Any] = field(default_factory=dict)  # backend timings, cached tokens, ...

    def token_id(self, index: int) -> int:
        return index if self.ids is None else int(self.ids[index])


class Backend(Protocol):
    name: str  # "embedded", "server", ...
    model: str  # what the user sees as the model's name
    context_length: int
    eos_ids: frozenset[int]
    full_vocab: bool  # True: scores cover the whole vocabulary; False: top-k only
    max_top_k: int | None  # the most candidates it can return (None: no limit)

    def encode(self, text: str, chat: bool = False) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_text(self, token_id: int) -> str: ...

    def new_cache(self) -> Any: ...

    def forward(self, ids: Sequence[int], cache: Any = None, top_k: int = 8) -> Scores: ...


BACKENDS: dict[str, str] = {
    "embedded": "tokenloop.backends.embedded:EmbeddedBackend",
    "server": "tokenloop.backends.server:ServerBackend",
    "fast": "tokenloop.backends.fast:FastBackend",  # the embedded model on the fast path (--engine torch)
    "llama.cpp": "tokenloop.backends.llamacpp:LlamaCppBackend",  # the GGUF in llama-cpp-python (--engine llama.cpp)
}


def backend_class(name: str):
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
