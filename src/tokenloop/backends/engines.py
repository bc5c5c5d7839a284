"""The ways to run the embedded model (`--engine`, `--dtype`), and the one that each option picks.

    transformers float32   the default: transformers' LlamaForCausalLM (any Hugging Face model)
    torch float32|bfloat16|int8|int4
                           fast.py's compact forward with a static KV cache
    onnxruntime int4|float32
                           the fast path: the model as an ONNX graph in ONNX Runtime (ort.py),
                           the whole step in native code; float32 is what the demo runs
    llama.cpp              the GGUF file in llama-cpp-python, if installed (its own format, Q4_1)

Every engine but the default prints its measured agreement with float32 when it opens (`backend.engine`
names the one running, with its weights: "torch int8").
"""

from __future__ import annotations

from .. import errors
from ..errors import UsageError
from . import DTYPES, ENGINES, ORT_DTYPES, backend_class

__all__ = ["DTYPES", "ENGINES", "choose", "open_embedded"]


def choose(engine: str | None, dtype: str | None) -> tuple[str, str | None]:
    """(engine, dtype) for the options given: a dtype other than float32 alone means the torch engine."""
    if engine is None:
        engine = "transformers" if dtype in (None, "float32") else "torch"
    if engine == "transformers" and dtype not in (None, "float32"):
        raise UsageError(f"--dtype {dtype} runs on the fast path: use --engine torch (or leave out --engine)")
    if engine == "llama.cpp" and dtype is not None:
        raise UsageError(
            "--dtype is for the torch engines; llama.cpp runs the GGUF file's own format: leave out --dtype"
        )
    if engine == "onnxruntime" and dtype not in (None, *ORT_DTYPES):
        raise UsageError(f"--engine onnxruntime builds {' or '.join(ORT_DTYPES)}, not --dtype {dtype}")
    if engine in ("torch", "onnxruntime") and dtype is None:
        dtype = "int4"
    return engine, dtype


def open_embedded(model: str | None, engine: str | None = None, dtype: str | None = None, log=None, guard: bool = True):
    """The embedded model on the engine the options name; a faster one says how well it agrees with float32."""
    engine, dtype = choose(engine, dtype)
    if engine == "transformers":
        return backend_class("embedded")(model=model, log=log)
    if engine == "torch":
        backend = backend_class("fast")(model=model, log=log, dtype=dtype)
    elif engine == "onnxruntime":
        backend = backend_class("onnxruntime")(model=model, log=log, dtype=dtype)
    else:
        backend = backend_class("llama.cpp")(model=model, log=log)
    if guard and backend.engine != "torch float32":
        from .agreement import checked

        say = log or errors.say
        say(checked(backend, say).line())
    return backend
