"""The expensive demos of the lesson, run on demand: a few training steps (step 4), the cost
staircase (step 5) and, with --url, the same staircase measured on the server. Each is a plain
function that imports its measuring module when a learner presses the button (torch-heavy ones
inside the function); a `Demo` runs one of them at most once at a time and keeps its last result,
so a reload shows it without measuring again."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from .errors import Busy, Unavailable


def train(backend, *, steps: int) -> dict:
    from ..training import teach  # torch and the optimizer: loaded on the first press

    return teach.train(trainable(backend), steps=steps).to_json()


def staircase(backend, *, max_len: int, points: int, repeats: int) -> dict:
    from ..cost import staircase as cost_staircase

    result = cost_staircase.measure(backend, max_len=max_len, points=points, repeats=repeats)
    return {**result.to_json(), "engine": engine_of(backend)}


def server_staircase(backend, **options) -> dict:
    from ..cost import server_staircase as on_server

    return on_server.measure(backend, **options)


def trainable(backend):
    """Training needs gradients, which only the transformers model has. On the torch or
    llama.cpp engine the same weights are loaded into it once, beside the fast path."""
    return backend if backend.can_train else transformers_copy(backend.model_dir or backend.gguf_file)


@functools.cache
def transformers_copy(weights: str):
    from ..backends.embedded import EmbeddedBackend

    return EmbeddedBackend(weights)


class Demo:
    """One demo: what it runs, what it needs of the backend (an attribute a backend declares where
    it has it: `model_dir` or llama.cpp's `gguf_file` to train in transformers, `config` for the staircase's forward with and
    without a cache, `client` for a server), at most one run at a time, the last result kept."""

    def __init__(self, name: str, measure: Callable[..., dict], needs: tuple[str, ...], how: str):
        self.name, self.measure, self.needs, self.how = name, measure, needs, how
        self.last: dict | None = None
        self._running = threading.Lock()

    def run(self, backend, **options) -> dict:
        called = self.name.replace("_", " ")
        if backend is None and self.needs != ("client",):
            raise Unavailable(f"the {called} demo needs a model running in this process (the embedded model)")
        if all(getattr(backend, need, None) is None for need in self.needs):  # declared where a backend has it
            raise Unavailable(f"the {called} demo needs {self.how}")
        if not self._running.acquire(blocking=False):
            raise Busy(f"the {called} demo is already running: wait for it to finish")
        try:
            self.last = self.measure(backend, **options)
            return self.last
        finally:
            self._running.release()


def demos() -> dict[str, Demo]:
    """A fresh set for one app, by name."""
    return {
        "training": Demo("training", train, ("model_dir", "gguf_file"), "the embedded model"),
        "staircase": Demo(
            "staircase", staircase, ("config",), "the embedded model on the transformers or torch engine"
        ),
        "server_staircase": Demo(
            "server_staircase", server_staircase, ("client",), "a server: start the lesson with --url"
        ),
    }


def engine_of(backend) -> str:
    """What ran an embedded demo, in words: 'transformers 4.57.1, float32, in this process'."""
    library = backend.engine.split()[0] if backend.engine else backend.name
    try:
        library = f"{library} {version(library)}"
    except PackageNotFoundError:  # an engine that is no Python distribution: llama.cpp
        pass
    rest = backend.engine.split(maxsplit=1)[1] if backend.engine and " " in backend.engine else ""
    return ", ".join(part for part in (library, rest, "in this process") if part)
