"""`tokenloop latency --url URL --concurrency 1,2,4,8`: the same streamed requests sent N at a time,
each level's output throughput beside what each user waits (TPOT, ITL): batching, measured. Or
`--rate 1,2,4`: requests arriving at each rate, whatever the server's pace. The load is planned and
printed before the first request, and stays on this machine unless `--allow-remote`."""

from __future__ import annotations

import sys

from rich.table import Table

from ...errors import UsageError
from ...terminal import progress_bar
from ..common import or_dash


def plan_levels(args, url: str, prompt: str, cold: bool = True) -> list:
    """The plans the options ask for (none without --concurrency), printed to stderr."""
    from ...latency import concurrency

    rate = getattr(args, "rate", None)
    if args.concurrency and rate:
        raise UsageError("give --concurrency (N at a time) or --rate (arrivals a second), not both")
    if not (args.concurrency or rate) and (args.requests or args.time_cap is not None or args.allow_remote):
        raise UsageError(
            "--requests, --time-cap and --allow-remote shape --concurrency or --rate: add e.g. --concurrency 1,2,4,8"
        )
    if not (args.concurrency or rate):
        return []
    cap = 60.0 if args.time_cap is None else args.time_cap
    if rate:
        plans = concurrency.rate_plans(
            url,
            concurrency.parse_rates(rate),
            args.requests,
            args.max_tokens,
            prompt,
            cap,
            args.allow_remote,
            args.chat,
            cold,
            args.arrivals,
        )
    else:
        levels = concurrency.parse_levels(args.concurrency)
        plans = concurrency.plans(
            url, levels, args.requests, args.max_tokens, prompt, cap, args.allow_remote, args.chat, cold
        )
    print("plan, after the single-stream run:", file=sys.stderr)
    for plan in plans:
        print(f"  {plan.describe()}", file=sys.stderr)
    return plans


def run_levels(url: str, plans: list, slos: dict) -> dict:
    import uuid

    from ...backends.server import Client, dialects
    from ...backends.server.discover import discover
    from ...latency import concurrency, saturation

    client = Client(url, timeout=120)
    try:
        caps = discover(client, None)
        dialect = dialects.DIALECTS.get(caps.kind, dialects.OTHER)
        with progress_bar("load levels") as bar:
            task = bar.add_task("", total=sum(len(p.requests) for p in plans))
            out = concurrency.measure(
                client,
                caps.model,
                plans,
                slos,
                lambda done, total: bar.update(task, completed=done, total=total),
                fresh=lambda: dialects.uncached_fields(dialect, uuid.uuid4().hex),
            )
    finally:
        client.close()
    top = concurrency.best(out["levels"])
    out["best"] = top["concurrency"] if top else None
    out["knee"] = saturation.knee(out["levels"])
    return out


def show_concurrency(console, data: dict) -> None:
    from ...latency.concurrency import best, name

    console.print()
    open_loop = any(level.get("rate") is not None for level in data["levels"])
    console.print(
        (
            "[bold]Arrivals[/]: requests sent at each rate, whatever the server's pace"
            if open_loop
            else "[bold]Batching[/]: the same requests, N at a time"
        )
        + " (ms; tokens/s over all requests; the server's queue time, and its gauges' highest readings, sampled "
        "four times a second)"
    )
    table = Table(box=None, header_style="bold")
    columns = (
        "a second" if open_loop else "at once",
        "done",
        "output tok/s",
        "TTFT median",
        "TPOT median",
        "TPOT p90",
        "ITL median",
        "ITL p99",
    )
    for column in (*columns, "server queue", "running", "waiting", "KV peak", "preempted"):
        table.add_column(column, justify="right")
    for level in data["levels"]:
        m, split = level["metrics"], level["split"]
        table.add_row(
            f"{level['rate']:g}" if open_loop else str(level["concurrency"]),
            f"{m['completed']}/{level['requests']}",
            or_dash(m["output_throughput"]),
            or_dash(m["median_ttft_ms"]),
            or_dash(m["median_tpot_ms"]),
            or_dash(m["p90_tpot_ms"]),
            or_dash(m["median_itl_ms"]),
            or_dash(m["p99_itl_ms"]),
            or_dash(split["queue_ms"]) if split else "–",
            _gauge(split, "running_peak"),
            _gauge(split, "waiting_peak"),
            f"{split['kv_usage_peak']:.1%}" if split and split.get("kv_usage_peak") is not None else "–",
            str(split.get("preemptions", "–")) if split else "–",
        )
    console.print(table)
    for level in data["levels"]:
        if level["stopped"]:
            console.print(f"  at {name(level)}: {level['stopped']}")
    top = best(data["levels"])
    if top:
        console.print(f"  the most output per second at {name(top)}")
    if data.get("knee"):
        console.print(f"  [bold]{data['knee']['sentence']}[/]", highlight=False)
    for key in ("plot", "saturation_plot"):
        if data.get(key):
            console.print(f"  chart written to {data[key]}")


def _gauge(split: dict | None, key: str) -> str:
    value = (split or {}).get(key)
    return "–" if value is None else f"{value:g}"
