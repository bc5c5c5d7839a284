"""`tokenloop staircase --url`: the staircase measured on a server (`server_staircase.py`): a fresh
n-token prompt's time to first token (no cache) against the streamed gap between tokens (the
server's KV cache) at each length, and what the prefix cache does for a repeated prompt."""

from __future__ import annotations

import argparse
import sys

from rich.table import Table

from ..errors import UsageError
from .common import emit_json, positive_int


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        help="measure this OpenAI-compatible server instead, e.g. http://127.0.0.1:8000/v1: "
        "time to first token of fresh prompts against the gaps between streamed tokens",
    )
    p.add_argument(
        "--gaps",
        type=positive_int("--gaps"),
        default=8,
        help="with --url: tokens streamed after the first, whose gaps time the cached step (default 8)",
    )


def cmd(args, console) -> int:
    from ..backends.server import ServerBackend
    from ..cost import server_staircase

    embedded = [f for f, v in (("--model", args.model), ("--engine", args.engine), ("--dtype", args.dtype)) if v]
    embedded += [f for f, v in (("--threads", args.threads), ("--plot", args.plot)) if v]
    if embedded:
        raise UsageError(f"{', '.join(embedded)}: for the embedded model's staircase; with --url drop them")
    backend = ServerBackend.from_args(args, log=lambda message: print(f"tokenloop: {message}", file=sys.stderr))

    def progress(p: server_staircase.Point) -> None:
        print(
            f"n={p.n}: {p.fresh_ms:,.1f} ms to the first token, {p.itl_ms or 0:,.2f} ms a token after", file=sys.stderr
        )

    try:
        data = server_staircase.measure(
            backend, args.max_len, args.points, args.repeats, args.gaps, on_point=None if args.json else progress
        )
    finally:
        backend.close()
    if args.json:
        emit_json(data)
        return 0
    console.print(f"[bold]The staircase on the server[/]: {data['model']}, {data['engine']}, {data['url']}")
    table = Table("tokens", "no cache: fresh prompt (ms)", "with the cache: one token (ms)")
    for p in data["series"]:
        table.add_row(f"{p['n']:,}", f"{p['fresh_ms']:,.1f}", "–" if p["itl_ms"] is None else f"{p['itl_ms']:,.2f}")
    console.print(table)
    for name, fit in data["fits"].items():
        console.print(
            f"{ {'fresh': 'no cache', 'itl': 'with the cache'}[name] }: {fit['formula']} (R² {fit['r2']:.3f})"
        )
    hits = Table("send", "time to first token (ms)", "prompt tokens found in the cache")
    for h in data["hits"]:
        found = "not reported" if h["hit_tokens"] is None else f"{h['hit_tokens']:,.0f} of {h['prompt_tokens']:,}"
        hits.add_row(h["label"], f"{h['ttft_ms']:,.1f}", found)
    console.print(hits)
    return 0
