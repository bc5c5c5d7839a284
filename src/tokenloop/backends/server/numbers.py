"""The one checked reader of a number that came from outside: a server's JSON, its `/metrics`
text, the labels of an info metric, a `--save` file read back. Everything else asks here.

A number passes when it is the right type (a JSON number, or with `text=True` a string that
spells one; never a bool), finite, within [low, high], and whole where a count belongs. Anything
else is None, and the caller skips it (and says so where a reader would miss it): a server that
sends `NaN`, `1e400`, `10**400` or `"12"` where a count goes can't crash a run or a page.

    number(12) -> 12          number(1e400) -> None     number("17", text=True) -> 17.0
    count(10**400) -> None    count(3.0) -> 3            number(True) -> None
"""

from __future__ import annotations

import math
from typing import Any

BIG = 1e15  # no count, byte size or millisecond figure a server sends is near this
MAX_TEXT = 64  # a number spelled in more characters than this is not one a server means


def number(value: Any, low: float = 0.0, high: float = BIG, *, text: bool = False) -> float | int | None:
    """`value` if it is a finite number in [low, high] (an int stays an int); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and text:
        if len(value) > MAX_TEXT:
            return None
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int):
        return value if low <= value <= high else None  # compared as ints: 10**400 never becomes a float
    if isinstance(value, float) and math.isfinite(value) and low <= value <= high:
        return value
    return None


def count(value: Any, high: float = BIG, *, text: bool = False) -> int | None:
    """A whole number of things (tokens, blocks, requests) in [0, high]: 3 and 3.0 pass, 3.5 doesn't."""
    found = number(value, 0, high, text=text)
    if found is None or (isinstance(found, float) and not found.is_integer()):
        return None
    return int(found)


def figures(data: Any, depth: int = 3) -> dict | None:
    """A server's dict of figures (`usage`, llama.cpp's `timings`, vLLM's per-request `metrics`)
    with every value checked: numbers that pass `number` (negative ones too, down to -BIG) and
    dicts of the same, `depth` deep; strings, bools, lists, NaN and 1e400 left out, so whoever
    reads a figure later finds a usable number or nothing. None for a value that is not a dict."""
    if not isinstance(data, dict):
        return None
    out: dict = {}
    for key, value in list(data.items())[:200]:
        if not isinstance(key, str):
            continue
        if isinstance(value, dict) and depth > 1:
            out[key] = figures(value, depth - 1)
        elif (checked := number(value, -BIG)) is not None:
            out[key] = checked
    return out
