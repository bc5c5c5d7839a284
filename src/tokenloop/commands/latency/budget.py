"""`tokenloop latency --ttft MS --itl MS`: the wait for an answer of `--tokens` tokens, from given
numbers alone. No server, no measurement: a what-if."""

from __future__ import annotations

from rich.table import Table

from ...errors import UsageError
from ..common import emit_json


def show_given(args, console) -> int:
    from ...latency import budget

    if args.ttft is None or args.itl is None:
        raise UsageError("give --url URL to measure a server, or both --ttft MS and --itl MS for the budget")
    data = budget.budget(args.ttft, args.itl, args.tokens)
    if args.json:
        emit_json(data)
    else:
        show_budget(console, data)
    return 0


def show_budget(console, data: dict) -> None:
    console.print(
        f"[bold]Latency budget[/]: first token after {data['ttft_ms']:,.0f} ms, then one every {data['itl_ms']:,.1f} ms"
    )
    console.print(
        f"  a {data['tokens']}-token answer: {data['ttft_ms']:,.0f} + ({data['tokens']} - 1) × {data['itl_ms']:,.1f} ms = "
        f"[bold]{data['total_ms'] / 1000:,.2f} s[/]"
    )
    console.print(
        f"  streaming at {data['stream_tokens_per_s']:,.1f} tokens/s; {data['tokens_per_s_seen']:,.1f} tokens/s over the whole wait"
    )
    table = Table(box=None, header_style="bold")
    for column in ("answer tokens", "total", "waiting for the first token"):
        table.add_column(column, justify="right")
    for row in data["table"]:
        table.add_row(f"{row['tokens']:,}", f"{row['total_ms'] / 1000:,.2f} s", f"{row['ttft_share']:.0%}")
    console.print(table)
    console.print("  Output length dominates: past a few dozen tokens, (n - 1) × ITL is the wait.")
