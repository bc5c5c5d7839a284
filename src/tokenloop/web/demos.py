"""The two expensive demos of the lesson, run on demand: a few training steps (step 4) and the
cost staircase (step 5). Their modules are imported only when a learner presses the button;
the last result of each is kept so a reload shows it without measuring again."""

from __future__ import annotations

import importlib
import threading

from ..errors import TokenloopError


class Unavailable(TokenloopError):
    """The demo's module is not part of this install, or the backend cannot run it."""


class Busy(TokenloopError):
    """The demo is already running for another request."""


MODULES = {"training": "tokenloop.training", "staircase": "tokenloop.staircase"}
# What each demo needs of the backend: training, where the weights are (`model_path`: it trains
# them in transformers); the staircase, the model's numbers (`config`) beside `forward` with and
# without a cache, which the transformers and torch engines have.
NEEDS = {"training": "model_path", "staircase": "config"}
HOW = {"training": "the embedded model", "staircase": "the embedded model on the transformers or torch engine"}


def module(name: str):
    try:
        return importlib.import_module(MODULES[name])
    except ModuleNotFoundError as e:
        if e.name == MODULES[name]:
            raise Unavailable(
                f"the {name} demo is not available in this version of tokenloop ({MODULES[name]} is missing)"
            ) from None
        raise


class Demo:
    """One demo: at most one run at a time, the last result kept."""

    def __init__(self, name: str):
        self.name = name
        self.last: dict | None = None
        self._running = threading.Lock()
        self._trainable = None  # the transformers model that the training demo loads beside a fast path

    def trainable(self, backend):
        """Training needs gradients, which only the transformers model has. On the torch or
        llama.cpp engine the same weights are loaded into it once, beside the fast path."""
        if backend.can_train:
            return backend
        if self._trainable is None:
            from ..backends.embedded import EmbeddedBackend

            self._trainable = EmbeddedBackend(backend.model_path)
        return self._trainable

    def run(self, backend, **options) -> dict:
        if backend is None:
            raise Unavailable(f"the {self.name} demo needs a model running in this process (the embedded model)")
        if getattr(backend, NEEDS[self.name]) is None:  # declared on every backend (None where it has none)
            raise Unavailable(f"the {self.name} demo needs {HOW[self.name]}")
        code = module(self.name)
        if not self._running.acquire(blocking=False):
            raise Busy(f"the {self.name} demo is already running: wait for it to finish")
        try:
            if self.name == "training":
                result = code.train(self.trainable(backend), steps=options["steps"])
            else:
                result = code.measure(
                    backend, max_len=options["max_len"], points=options["points"], repeats=options["repeats"]
                )
            self.last = result.to_json()
            return self.last
        finally:
            self._running.release()
