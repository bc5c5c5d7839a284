"""The expensive demos of the lesson, run on demand: a few training steps (step 4), the cost
staircase (step 5) and, with --url, the same staircase measured on the server. Their modules are
imported only when a learner presses the button; the last result of each is kept so a reload
shows it without measuring again."""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import PackageNotFoundError, version

from ..errors import TokenloopError


class Unavailable(TokenloopError):
    """The demo's module is not part of this install, or the backend cannot run it."""


class Busy(TokenloopError):
    """The demo is already running for another request."""


MODULES = {
    "training": "tokenloop.training.teach",
    "staircase": "tokenloop.cost.staircase",
    "server_staircase": "tokenloop.cost.server_staircase",
}
# What each demo needs of the backend: training, where the weights are (`model_dir`, or llama.cpp's
# `gguf_file`: it trains them in transformers); the staircase, the model's numbers (`config`) beside `forward` with and
# without a cache, which the transformers and torch engines have; the server's staircase, a
# server's HTTP client.
NEEDS = {"training": ("model_dir", "gguf_file"), "staircase": ("config",), "server_staircase": ("client",)}
HOW = {
    "training": "the embedded model",
    "staircase": "the embedded model on the transformers or torch engine",
    "server_staircase": "a server: start the lesson with --url",
}


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

            self._trainable = EmbeddedBackend(backend.model_dir or backend.gguf_file)
        return self._trainable

    def run(self, backend, **options) -> dict:
        called = self.name.replace("_", " ")
        if backend is None and self.name == "server_staircase":
            raise Unavailable(f"the {called} demo needs {HOW[self.name]}")
        if backend is None:
            raise Unavailable(f"the {called} demo needs a model running in this process (the embedded model)")
        if all(getattr(backend, need, None) is None for need in NEEDS[self.name]):  # declared where a backend has it
            raise Unavailable(f"the {called} demo needs {HOW[self.name]}")
        code = module(self.name)
        if not self._running.acquire(blocking=False):
            raise Busy(f"the {called} demo is already running: wait for it to finish")
        try:
            if self.name == "training":
                self.last = code.train(self.trainable(backend), steps=options["steps"]).to_json()
            elif self.name == "staircase":
                result = code.measure(
                    backend, max_len=options["max_len"], points=options["points"], repeats=options["repeats"]
                )
                self.last = {**result.to_json(), "engine": engine_of(backend)}
            else:
                self.last = code.measure(backend, **options)
            return self.last
        finally:
            self._running.release()


def engine_of(backend) -> str:
    """What ran an embedded demo, in words: 'transformers 4.57.1, float32, in this process'."""
    library = backend.engine.split()[0] if backend.engine else backend.name
    try:
        library = f"{library} {version(library)}"
    except PackageNotFoundError:  # an engine that is no Python distribution: llama.cpp
        pass
    rest = backend.engine.split(maxsplit=1)[1] if backend.engine and " " in backend.engine else ""
    return ", ".join(part for part in (library, rest, "in this process") if part)
