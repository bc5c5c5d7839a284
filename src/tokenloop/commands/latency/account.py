"""The server's own account of a `latency --url` run, printed: how warm the cache was (the run's
first line), each request's TTFT as a waterfall (queue, server TTFT, the rest) with the percentiles
of each part, and the ITL histogram's floor beside the client's distribution."""

from __future__ import annotations

from rich.table import Table

from ..common import or_dash

WIDTH = 40  # characters of the longest waterfall bar


def show_warmth(console, warmth: dict | None) -> None:
    """One line, first: cold, or how warm (in yellow when the run measured the cache)."""
    if not warmth:
        return
    style = "bold yellow" if warmth["headline"].startswith("you measured") else "bold"
    console.print(f"[{style}]{warmth['headline']}[/]", highlight=False)
    if warmth["counter_queries"]:
        console.print(
            f"  the server's prefix-cache counters over the run: {warmth['counter_hits']:,} of "
            f"{warmth['counter_queries']:,} prompt tokens hit",
            highlight=False,
        )


def waterfall(stats: dict) -> list[str]:
    """Median client TTFT and its parts as bars that start where the part before ended."""
    client = stats["client_ttft_ms"]["median"]
    scale = WIDTH / client if client > 0 else 0.0
    lines, start = [f"  {'client TTFT':<12} {client:8.1f} ms  |{'█' * round(client * scale)}"], 0.0
    for key, label in (("queue_ms", "queue"), ("server_ttft_ms", "server TTFT"), ("rest_ms", "the rest")):
        part = stats[key]["median"] if stats.get(key) else None
        if part is None:
            lines.append(f"  {label:<12} {'–':>8}     |  (not reported)")
            continue
        offset, length = round(start * scale), max(round(max(part, 0.0) * scale), 1 if part > 0.05 else 0)
        lines.append(f"  {label:<12} {part:8.1f} ms  |{' ' * offset}{'▒' * length}")
        start += max(part, 0.0)
    return lines


def show_account(console, data: dict | None) -> None:
    if not data:
        console.print(
            "  each request's own account: not sent (vLLM: start it with --enable-per-request-metrics; "
            "tokenloop probe says what your server has)"
        )
        return
    stats = data["stats"]
    console.print()
    console.print(
        f"[bold]Each request's TTFT by the server's own account[/] ({data['source']}, {data['requests']} of "
        f"{data['of']} requests; medians, ms)"
    )
    for line in waterfall(stats):
        console.print(line, highlight=False)
    table = Table(box=None, header_style="bold")
    for column in ("part", "mean", "median", "p90", "p99", "what it is"):
        table.add_column(column, justify="left" if column in ("part", "what it is") else "right")
    labels = {"client_ttft_ms": "client TTFT: sent to first token, the client's clock", **data["parts"]}
    for key, text in labels.items():
        s = stats.get(key)
        row = [s[k] if s else None for k in ("mean", "median", "p90", "p99")]
        table.add_row(key.removesuffix("_ms"), *(or_dash(v) for v in row), text)
    console.print(table)
    if data["rest_negative"]:
        console.print(
            f"  [yellow]caveat[/]: in {data['rest_negative']} requests the server's parts exceed the client's TTFT"
        )
    itl = stats.get("server_itl_ms"), stats.get("client_itl_ms")
    if all(itl):
        console.print(
            f"  per-request mean ITL, median: server {itl[0]['median']:,.1f} ms, client {itl[1]['median']:,.1f} ms"
        )


def show_floor(console, floor: dict | None) -> None:
    if not floor:
        return
    console.print()
    console.print(
        f"[bold]The server's ITL histogram[/] ({floor['observations']:,} gaps; its first bucket ends at "
        f"{floor['first_bucket_ms']:g} ms; ms)"
    )
    table = Table(box=None, header_style="bold")
    for column in ("", "server (histogram)", "its bucket", "client (every gap timed)", "server trusted?"):
        table.add_column(column, justify="right")
    for r in floor["rows"]:
        low, high = r["bucket_ms"]
        table.add_row(
            f"p{r['q']}",
            or_dash(r["server_ms"]),
            f"{low:.4g}-{high:.4g}",
            or_dash(r["client_ms"]),
            "yes" if r["trusted"] else "[yellow]no: read the client's[/]",
        )
    console.print(table)
    console.print(f"  {floor['verdict']}", highlight=False)
