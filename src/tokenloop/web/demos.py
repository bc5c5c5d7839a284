"""The expensive demos of the lesson, run on demand: a few training steps (step 4), the cost
staircase (step 5) and, with --url, the same staircase measured on the server. Each is a plain
function that imports its measuring module when a learner presses the button (torch-heavy ones
inside the function); a `Demo` runs one of them at most once at a time (the timings of two at once
would measure each other). Each takes `on_progress(done, total)`, which may raise to stop it, and
each result names what ran it (`source`): training runs on the embedded model also beside a
server. Results are kept per browser session (`jobs.py`), so a reload draws them without measuring."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from ..measure import provenance
from .errors import Busy, Unavailable

Progress = Callable[[int, int], None] | None


def train(backend, *, steps: int, on_progress: Progress = None) -> dict:
    from ..training import teach  # torch and the optimizer: loaded on the first press

    model = trainable(backend)
    step = (lambda record: on_progress(record.step, steps)) if on_progress else None
    result = teach.train(model, steps=steps, on_step=step).to_json()
    return {**result, "source": provenance.embedded(model)}


def staircase(backend, *, max_len: int, points: int, repeats: int, on_progress: Progress = None) -> dict:
    from ..cost import staircase as cost_staircase

    result = cost_staircase.measure(backend, max_len=max_len, points=points, repeats=repeats, on_progress=on_progress)
    return {**result.to_json(), "engine": engine_of(backend), "source": provenance.embedded(backend)}


def server_staircase(backend, on_progress: Progress = None, **options) -> dict:
    from ..cost import server_staircase as on_server

    return {**on_server.measure(backend, on_progress=on_progress, **options), "source": provenance.server(backend)}


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
    without a cache, `client` for a server), at most one run at a time."""

    def __init__(self, name: str, measure: Callable[..., dict], needs: tuple[str, ...], how: str):
        self.name, self.measure, self.needs, self.how = name, measure, needs, how
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
            return self.measure(backend, **options)
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
