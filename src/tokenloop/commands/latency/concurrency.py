"""`tokenloop latency --url URL --concurrency 1,2,4,8`: the same streamed requests sent N at a time,
each level's output throughput beside what each user waits (TPOT, ITL): batching, measured. The
load is planned and printed before the first request, and stays on this machine unless
`--allow-remote`."""

from __future__ import annotations

import sys

from rich.table import Table

from ...errors import UsageError
from ...terminal import progress_bar
from ..common import or_dash


def plan_levels(args, url: str, prompt: str) -> list:
    """The plans the options ask for (none without --concurrency), printed to stderr."""
    from ...latency import concurrency

    if not args.concurrency and (args.requests or args.time_cap is not None or args.allow_remote):
        raise UsageError(
            "--requests, --time-cap and --allow-remote shape --concurrency: add e.g. --concurrency 1,2,4,8"
        )
    if not args.concurrency:
        return []
    levels = concurrency.parse_levels(args.concurrency)
    plans = concurrency.plans(
        url,
        levels,
        args.requests,
        args.max_tokens,
        prompt,
        60.0 if args.time_cap is None else args.time_cap,
        args.allow_remote,
        args.chat,
    )
    print("plan, after the single-stream run:", file=sys.stderr)
    for plan in plans:
        print(f"  {plan.describe()}", file=sys.stderr)
    return plans


def run_levels(url: str, plans: list, slos: dict) -> dict:
    from ...backends.server import Client
    from ...latency import concurrency
    from ...latency.budget import model_name

    client = Client(url, timeout=120)
    try:
        model = model_name(client)
        with progress_bar("concurrency levels") as bar:
            task = bar.add_task("", total=sum(len(p.requests) for p in plans))
            out = concurrency.measure(
                client, model, plans, slos, lambda done, total: bar.update(task, completed=done, total=total)
            )
    finally:
        client.close()
    top = concurrency.best(out["levels"])
    out["best"] = top["concurrency"] if top else None
    return out


def show_concurrency(console, data: dict) -> None:
    console.print()
    console.print(
        "[bold]Batching[/]: the same requests, N at a time (ms; tokens/s over all requests; "
        "the server's queue time and its KV cache's fullest, sampled twice a second)"
    )
    table = Table(box=None, header_style="bold")
    columns = ("at once", "done", "output tok/s", "TTFT median", "TPOT median", "TPOT p90", "ITL median", "ITL p99")
    for column in (*columns, "server queue", "KV peak"):
        table.add_column(column, justify="right")
    for level in data["levels"]:
        m, split = level["metrics"], level["split"]
        table.add_row(
            str(level["concurrency"]),
            f"{m['completed']}/{level['requests']}",
            or_dash(m["output_throughput"]),
            or_dash(m["median_ttft_ms"]),
            or_dash(m["median_tpot_ms"]),
            or_dash(m["p90_tpot_ms"]),
            or_dash(m["median_itl_ms"]),
            or_dash(m["p99_itl_ms"]),
            or_dash(split["queue_ms"]) if split else "–",
            f"{split['kv_usage_peak']:.1%}" if split and split.get("kv_usage_peak") is not None else "–",
        )
    console.print(table)
    for level in data["levels"]:
        if level["stopped"]:
            console.print(f"  at {level['concurrency']}: {level['stopped']}")
    if data.get("best"):
        console.print(f"  the most output per second at {data['best']} at once")
    if data.get("plot"):
        console.print(f"  chart written to {data['plot']}")
