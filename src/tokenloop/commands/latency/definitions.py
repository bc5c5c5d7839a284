"""`tokenloop latency --definitions`: one set of requests under three tools' definitions of TTFT,
TPOT and ITL (vLLM's bench, GuideLLM, AIPerf), so a number quoted from one tool can be read in
another's terms. Printed after a measured run, and for a `--load` file."""

from __future__ import annotations

from rich.table import Table

from ..common import or_dash


def show_definitions(console, by_tool: dict) -> None:
    from ...latency.definitions import DEFINITIONS, TOOLS

    console.print()
    console.print("[bold]One set of requests, three definitions[/] (median and p90, ms)")
    table = Table(box=None, header_style="bold")
    for column in ("tool", "metric", "median", "p90", "definition"):
        table.add_column(column, justify="right" if column in ("median", "p90") else "left")
    for tool, label in TOOLS.items():
        for metric in ("ttft", "tpot", "itl"):
            stats = by_tool[tool][metric]
            table.add_row(
                label if metric == "ttft" else "",
                metric.upper(),
                or_dash(stats[f"median_{metric}_ms"]),
                or_dash(stats[f"p90_{metric}_ms"]),
                DEFINITIONS[(tool, metric)],
            )
    console.print(table)
    console.print(
        "  GuideLLM's TPOT spreads the first token's wait over every token; its and AIPerf's ITL is vLLM's TPOT."
    )
