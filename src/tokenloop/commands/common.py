"""Options and helpers shared by the commands: choosing the backend, reading options."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import UsageError


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", metavar="PATH", help="a local Hugging Face model folder or .gguf file (default: the embedded SmolLM2-135M-Instruct)")


def open_backend(args: argparse.Namespace, log=None):
    """The backend the options ask for. Imports torch and the model code only now."""
    from ..backends import backend_class

    name = getattr(args, "backend", None) or "embedded"
    if name == "embedded":
        return backend_class("embedded")(model=args.model, log=log)
    return backend_class(name).from_args(args, log=log)


def positive_int(name: str):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} takes a whole number, not {value!r}") from None
        if number < 1:
            raise argparse.ArgumentTypeError(f"{name} must be at least 1, not {number}")
        return number

    return parse


def number(name: str):
    def parse(value: str) -> float:
        try:
            return float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} takes a number, not {value!r}") from None

    return parse


def read_prompt(args: argparse.Namespace) -> str:
    prompt = args.prompt
    if prompt == "-":
        prompt = sys.stdin.read()
    if prompt is None or not prompt.strip():
        raise UsageError("the prompt is empty: give some text, e.g. tokenloop run \"Kubernetes pods are scheduled by the\"")
    return prompt


def emit_json(record: dict) -> None:
    """One JSON object per line, flushed, so a reader sees each step as it happens."""
    sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    sys.stdout.flush()
