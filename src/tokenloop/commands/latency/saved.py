"""`tokenloop latency --load FILE`: the numbers of a `--save` file recomputed from its raw
timestamps alone, no server: each group (the single-stream run, each concurrency level) in vLLM
bench's terms, and the three tools' definitions side by side."""

from __future__ import annotations

from rich.table import Table

from ...errors import UsageError
from ...terminal import titled
from ..common import emit_json, or_dash
from .account import show_account, show_warmth
from .definitions import show_definitions


def recompute(args, console) -> int:
    """The numbers of a --save file, from its records alone."""
    from ...latency import account
    from ...latency import definitions as latency_definitions
    from ...measure import streamed

    if args.url or args.ttft is not None or args.itl is not None:
        raise UsageError("--load recomputes a saved run: leave out --url, --ttft and --itl")
    records = streamed.load(args.load)
    groups: dict[str, list] = {}
    for r in records:
        groups.setdefault(r.group, []).append(r)
    single = [r for r in records if not r.group.startswith("concurrency")] or records
    data = {
        "file": args.load,
        "requests": len(records),
        "by_tool": latency_definitions.side_by_side(single),
        "groups": {name: streamed.bench(rs, span_s(rs)) for name, rs in groups.items()},
        "account": account.account(single),
        "warmth": account.warmth(single),
    }
    if args.json:
        emit_json(data)
        return 0
    show_warmth(console, data["warmth"])
    console.print(titled(f"{len(records)} requests", f" from {args.load}"))
    show_definitions(console, data["by_tool"])
    show_groups(console, data["groups"])
    if data["account"]:
        show_account(console, data["account"])
    return 0


def span_s(records: list) -> float:
    """A group's wall time: one at a time, the sum of their times; together, first sent to last token."""
    from ...measure.streamed import span_s as together

    if records[0].group.startswith("concurrency"):
        return together(records)
    return sum(r.total_ms for r in records) / 1000


def show_groups(console, groups: dict) -> None:
    console.print()
    table = Table(box=None, header_style="bold")
    for column in ("group", "requests", "output tok/s", "TTFT median", "TPOT median", "ITL median", "E2EL median"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for name, m in groups.items():
        table.add_row(
            name or "–",
            str(m["completed"]),
            or_dash(m["output_throughput"]),
            or_dash(m["median_ttft_ms"]),
            or_dash(m["median_tpot_ms"]),
            or_dash(m["median_itl_ms"]),
            or_dash(m["median_e2el_ms"]),
        )
    console.print(table)
