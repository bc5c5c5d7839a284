"""Options and helpers shared by the commands: choosing the backend, reading options, showing sizes and numbers."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from ..backends import DTYPES, ENGINES
from ..errors import UsageError, printable_json


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        metavar="PATH",
        help="a local Hugging Face model folder or .gguf file (default: the embedded SmolLM2-135M-Instruct)",
    )
    group.add_argument(
        "--engine",
        choices=ENGINES,
        help="how the embedded model runs: transformers (default), "
        "torch (a compact forward with a static KV cache), onnxruntime (the fast path: the model as an ONNX graph), "
        "llama.cpp (the GGUF file, needs llama-cpp-python)",
    )
    group.add_argument(
        "--dtype",
        choices=DTYPES,
        help="the embedded model's weights: float32 (default), or "
        "bfloat16/int8/int4 on --engine torch, float32/int4 on --engine onnxruntime, each printing its measured "
        "agreement with float32 (default with --engine torch or onnxruntime: int4)",
    )
    server = parser.add_argument_group("your own server (OpenAI-compatible: vLLM, SGLang, llama.cpp, Ollama)")
    server.add_argument(
        "--url",
        metavar="URL",
        help="use this server instead of the embedded model, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL)",
    )
    server.add_argument("--api-key", metavar="KEY", help="the server's API key (default: $OPENAI_API_KEY)")
    server.add_argument(
        "--server-model", metavar="NAME", help="which served model (default: the first one /v1/models lists)"
    )
    server.add_argument(
        "--stream",
        action="store_true",
        help="run: one streaming request; the server runs the loop and sends each token with its logprobs",
    )
    server.add_argument(
        "--server-sample",
        action="store_true",
        help="run: the server picks each token (with --temperature/--top-k/--top-p), not tokenloop",
    )
    server.add_argument(
        "--server-timeout",
        type=number("--server-timeout"),
        default=60.0,
        metavar="S",
        help="seconds to wait for each answer (default 60)",
    )


def open_backend(args: argparse.Namespace, log=None):
    """The backend the options ask for. Imports torch and the model code only now."""
    from ..backends import backend_class

    from_env = os.environ.get("OPENAI_BASE_URL") and not getattr(args, "model", None)
    if not getattr(args, "backend", None) and (getattr(args, "url", None) or from_env):
        args.backend = "server"  # --url (or $OPENAI_BASE_URL, unless --model names a local model) picks the server
    name = getattr(args, "backend", None) or "embedded"
    if name == "server" and getattr(args, "model", None):
        raise UsageError("--model is for the embedded model; with --url name the served model with --server-model")
    if getattr(args, "stream", False) and getattr(args, "server_sample", False):
        raise UsageError("give --stream (one request, the server runs the loop) or --server-sample, not both")
    if name != "server" and (getattr(args, "stream", False) or getattr(args, "server_sample", False)):
        raise UsageError("--stream and --server-sample need a server: add --url http://host:8000/v1")
    if name == "embedded":
        from ..backends.engines import open_embedded

        return open_embedded(args.model, getattr(args, "engine", None), getattr(args, "dtype", None), log=log)
    if getattr(args, "engine", None) or getattr(args, "dtype", None):
        raise UsageError(
            "--engine and --dtype are for the embedded model; a server runs its own: leave them out with --url"
        )
    return backend_class(name).from_args(args, log=log)


MOST = 10**9  # no count an option takes is near this; a larger one is refused before it is used


def positive_int(name: str, most: int = MOST):
    """A whole number from 1 to `most` (400 digits are refused as they are read, never used)."""

    def parse(value: str) -> int:
        if len(value.strip()) > 30:
            raise argparse.ArgumentTypeError(
                f"{name} must be at most {most:,}, not a {len(value.strip())}-digit number"
            )
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} takes a whole number, not {value!r}") from None
        if number < 1:
            raise argparse.ArgumentTypeError(f"{name} must be at least 1, not {number}")
        if number > most:
            raise argparse.ArgumentTypeError(f"{name} must be at most {most:,}, not {number:,}")
        return number

    return parse


def number(name: str):
    """A finite number (nan, inf and 1e400 are refused as they are read)."""

    def parse(value: str) -> float:
        try:
            found = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} takes a number, not {value!r}") from None
        if found != found or found in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{name} takes a finite number, not {value!r}")
        return found

    return parse


MAX_SEED = 2**63 - 1  # torch's generators take a 64-bit seed


def seed(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed takes a whole number, not {value!r}") from None
    if not 0 <= number <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"--seed must be between 0 and 2**63 - 1, not {value}")
    return number


def read_prompt(args: argparse.Namespace) -> str:
    prompt = args.prompt
    if prompt == "-":
        prompt = _stdin_prompt()
    if prompt is None or not prompt.strip():
        raise UsageError(
            'the prompt is empty: give some text, e.g. tokenloop run "Kubernetes pods are scheduled by the"'
        )
    try:
        prompt.encode("utf-8")  # bytes that are not UTF-8 arrive from argv as lone surrogates
    except UnicodeEncodeError:
        raise UsageError("the prompt is not valid UTF-8 text: convert it first, e.g. with iconv -t UTF-8") from None
    return prompt


MAX_STDIN = 1 << 20  # a prompt is far shorter than any model's context long before this


def _stdin_prompt() -> str:
    """The prompt from stdin, read at most MAX_STDIN bytes (not /dev/zero for ever); closed stdin
    reads as empty."""
    stream = getattr(sys.stdin, "buffer", None)
    try:
        raw = stream.read(MAX_STDIN + 1) if stream is not None else b""
    except (OSError, ValueError):  # stdin closed (`<&-`) or not readable
        raw = b""
    if len(raw) > MAX_STDIN:
        raise UsageError(
            f"the prompt on stdin is over {MAX_STDIN >> 20} MB: no model's context holds that; give a shorter text"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "\udcff"  # refused as not UTF-8 by the caller


def emit_json(record: dict) -> None:
    """One JSON object per line, flushed, so a reader sees each step as it happens. NaN and
    infinity (which JSON lacks) are written as null, never as `NaN`; characters a terminal would
    act on (C1 codes, bidi controls) or can't write (lone surrogates) as \\u escapes."""
    sys.stdout.write(printable_json(json.dumps(finite(record), ensure_ascii=False, allow_nan=False)) + "\n")
    sys.stdout.flush()


def finite(data):
    """A JSON-ready value with every NaN and infinity made null (JSON has neither)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(v) for v in data]
    return data


def byte_size(n: float | None) -> str:
    """Bytes in decimal units, as the README's tables: 46.1 KB, 538.1 MB, 1.08 GB ("n/a" for None)."""
    if n is None:
        return "n/a"
    for unit, scale, digits in (("GB", 1e9, 2), ("MB", 1e6, 1), ("KB", 1e3, 1)):
        if abs(n) >= scale:
            return f"{n / scale:,.{digits}f} {unit}"
    return f"{n:,.0f} B"


def or_dash(value: float | None, digits: int = 1) -> str:
    """A measured number for a table, with thousands separators; "–" where none was measured."""
    return "–" if value is None else f"{value:,.{digits}f}"
