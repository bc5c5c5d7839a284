"""The quality guard of a fast path: how closely it agrees with the float32 model.

A faster path reads its weights in fewer bits (or runs another engine), so its distributions
move a little. We measure how much on a fixed set of texts, at every position of each (the
model reads the text and predicts each next token, as in training):

- top-1 agreement: the share of positions where both pick the same most likely token;
- mean KL divergence, KL(float32 || fast) in nats: how far the whole distribution moved.

A fast path is offered with these two numbers printed (targets: top-1 >= 95%, KL < 0.01).
The check takes a few seconds, so its result is kept per model file and engine in the user cache
(reading it back needs no torch: the onnxruntime engine's runs start without it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..model import files as model_files
from . import WEIGHTS_VERSION

if TYPE_CHECKING:
    import torch

TOP1_TARGET = 0.95
KL_TARGET = 0.01

# A fixed, varied set: prose, instructions, code, numbers, lists, another language, a chat turn.
TEXTS = (
    "Kubernetes pods are scheduled by the kube-scheduler, which picks a node for every pod that has none yet.",
    "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "To make a cup of tea, boil fresh water, warm the pot, add one spoon of leaves per cup and wait four minutes.",
    "1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987",
    "Shopping list:\n- eggs\n- flour\n- two litres of milk\n- butter\n- a bag of apples\n",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen inside the chloroplasts of a leaf.",
    "Le chat dort sur le canapé pendant que la pluie tombe doucement sur la ville.",
    "SELECT name, count(*) FROM orders JOIN customers ON orders.customer_id = customers.id GROUP BY name;",
    "<|im_start|>user\nWhat is a token?<|im_end|>\n<|im_start|>assistant\nA token is a piece of text, often part of a word,",
    "Once upon a time, in a small village at the edge of a dark forest, there lived an old clockmaker and his cat.",
    "The mitochondria is the powerhouse of the cell, producing most of the chemical energy as ATP.",
)


@dataclass(frozen=True)
class Agreement:
    engine: str  # e.g. "torch int8"
    top1: float  # share of positions where the most likely token is the same
    kl: float  # mean KL(float32 || engine) in nats
    positions: int
    texts: int

    @property
    def ok(self) -> bool:
        return self.top1 >= TOP1_TARGET and self.kl < KL_TARGET

    def line(self) -> str:
        verdict = "within" if self.ok else "OUTSIDE"
        return (
            f"{self.engine}: top-1 agreement with float32 {100 * self.top1:.1f}%, mean KL {self.kl:.4f} nats "
            f"over {self.positions} positions of {self.texts} texts ({verdict} the targets >= {100 * TOP1_TARGET:.0f}%, < {KL_TARGET})"
        )


def compare(reference: torch.Tensor, fast: torch.Tensor) -> tuple[int, float, int]:
    """(positions where the top-1 tokens agree, summed KL(reference || fast), positions) for (T, V) logits."""
    import torch

    ref, out = torch.log_softmax(reference.float(), -1), torch.log_softmax(fast.float(), -1)
    kl = (ref.exp() * (ref - out)).sum(-1).clamp(min=0)  # per position
    same = (reference.argmax(-1) == fast.argmax(-1)).sum()
    return int(same), float(kl.sum()), reference.shape[0]


def measure(reference, fast, texts=TEXTS) -> Agreement:
    """Agreement of backend `fast` with backend `reference` (both with `.encode` and `.all_logits`)."""
    same = positions = 0
    kl = 0.0
    for text in texts:
        ids = reference.encode(text)
        s, k, n = compare(reference.all_logits(ids), fast.all_logits(ids))
        same, kl, positions = same + s, kl + k, positions + n
    return Agreement(fast.engine, same / positions, kl / positions, positions, len(texts))


def cache_file(backend) -> Path:
    source = Path(backend.gguf_file or backend.model_dir)
    stat = source.stat() if source.is_file() else (source / "config.json").stat()
    graph = getattr(backend, "graph", None)  # the onnxruntime engine: which built graph (its folder names its key)
    key = f"{source.resolve()}:{stat.st_mtime_ns}:v{WEIGHTS_VERSION}:{graph.name if graph else ''}".encode()
    name = f"{source.stem}-{hashlib.sha1(key).hexdigest()[:10]}-{backend.engine.replace(' ', '-')}.json"
    return model_files.cache_root() / "agreement" / name


def float32_reference(backend, log=None):
    """The float32 model an engine is measured against: the same weights through `fast.py` in float32
    (equal to the transformers model's logits), or the transformers model for other architectures."""
    from ..errors import ModelError
    from .embedded import EmbeddedBackend
    from .fast import FastBackend

    try:
        return FastBackend(backend.model_dir or backend.gguf_file, log=log, dtype="float32")
    except ModelError:
        return EmbeddedBackend(backend.model_dir or backend.gguf_file, log=log)


def checked(backend, log=None) -> Agreement:
    """The agreement of a fast-path backend, measured once per model and engine, then read from the cache."""
    file = cache_file(backend)
    if file.is_file():
        try:
            return Agreement(**json.loads(file.read_text()))
        except (TypeError, ValueError):
            pass  # an old or broken file: measure again
    if log:
        log(f"measuring {backend.engine} against float32 once (a few seconds) ...")
    result = measure(float32_reference(backend, log), backend)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(asdict(result)))
    return result
