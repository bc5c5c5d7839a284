"""What `tokenloop latency` prints: the tables beside their definitions (the data is the --json object)."""

from __future__ import annotations

from pathlib import PurePath

from rich.table import Table


def _opt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def show_latency(console, data: dict, tokens: int, plot: str | None) -> None:
    from ..charts import bars

    console.print(f"[bold]Latency[/]: {PurePath(data['model']).name} at {data['url']}")
    console.print(f"  {data['points']} answer lengths × {data['repeats']} repeats; medians; ms")
    table = Table(box=None, header_style="bold")
    for column in ("tokens", "TTFT", "ITL", "total", "server: prompt", "server: ITL", "1 call/token: total"):
        table.add_column(column, justify="right")
    for p, q in zip(data["series"], data["loop"]["series"]):
        table.add_row(
            str(p["tokens"]),
            _opt(p["ttft_ms"]),
            _opt(p["itl_ms"]),
            _opt(p["total_ms"]),
            _opt(p["server_prompt_ms"]),
            _opt(p["server_itl_ms"] if p["tokens"] > 1 else None),
            _opt(q["total_ms"]),
        )
    console.print(table)
    if data["repeats"] > 1:
        worst = max(
            p["total_spread_ms"] / p["total_ms"] for p in data["series"] + data["loop"]["series"] if p["total_ms"]
        )
        console.print(f"  noise: totals of one length differed by up to {100 * worst:.0f} % between repeats")
    else:
        console.print("  noise: one repeat, so no spread was measured (use --repeats 3)")
    fit, loop, server = data["fit"], data["loop"]["fit"], data["server"]
    console.print(f"  streamed:          total ≈ {fit['formula']}   R² {fit['r2']:.3f}")
    console.print(f"  one request/token: total ≈ {loop['formula']}   R² {loop['r2']:.3f}")
    if server["itl_ms"] is not None:
        console.print(
            f"  the server's own timings: prompt {_opt(server['prompt_ms'])} ms, {_opt(server['itl_ms'])} ms per token"
        )
    console.print()
    rows = []
    for p, q in zip(data["series"], data["loop"]["series"]):
        rows += [(f"n={p['tokens']}", p["total_ms"], "stream"), ("", q["total_ms"], "loop")]
    for line in bars(rows):
        console.print("  " + line, style="cyan" if "▒" in line else "red", highlight=False)
    console.print("  ▒ one streamed request   █ one request per token")
    for key, label in (("stream", "streamed"), ("loop", "one request per token")):
        b = data["budget"][key]
        if b:
            console.print(
                f"  {tokens} tokens, {label}: ≈ {b['total_ms'] / 1000:,.1f} s "
                f"({b['tokens_per_s_seen']:,.1f} tokens/s; TTFT {b['ttft_share']:.0%} of it)"
            )
    if plot:
        console.print(f"  chart written to {plot}")


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


def show_metrics(console, m: dict, definitions: dict) -> None:
    """Every streamed request together, in vLLM bench's terms, each metric beside its definition."""
    console.print()
    console.print(f"[bold]All {m['completed']} streamed requests[/] (one at a time), in vllm bench serve's terms; ms")
    table = Table(box=None, header_style="bold")
    for column in ("metric", "mean", "median", "std", "p90", "p99", "definition"):
        table.add_column(column, justify="left" if column in ("metric", "definition") else "right")
    for name, text in definitions.items():
        stats = [m[f"{stat}_{name}_ms"] for stat in ("mean", "median", "std", "p90", "p99")]
        table.add_row(name.upper(), *(_opt(v) for v in stats), text)
    console.print(table)
    console.print(
        f"  output throughput {_opt(m['output_throughput'])} tokens/s, {_opt(m['request_throughput'], 2)} requests/s"
    )
    if "request_goodput" in m:
        slos = ", ".join(f"{k} ≤ {v:g} ms" for k, v in m["goodput_slos_ms"].items())
        console.print(
            f"  goodput ({slos}): {_opt(m['request_goodput'], 2)} requests/s, "
            f"{100 * (m['goodput_share'] or 0):.0f}% of the requests met them all"
        )


def progress_bar(what: str):
    from .staircase import progress_bar as bar

    return bar(what)


def show_split(console, split: dict | None) -> None:
    """Client TTFT beside the server's own queue and prefill time."""
    if not split:
        console.print("  the server's split of TTFT: not available (no /metrics histograms, no timings)")
        return
    console.print()
    console.print(
        f"[bold]Where TTFT goes[/] (means over {split['requests']} requests, from the server's {split['source']}; ms)"
    )
    queue = "–" if split["queue_ms"] is None else f"{split['queue_ms']:,.1f}"
    console.print(
        f"  client TTFT {split['client_ttft_ms']:,.1f} = server queue {queue} + server prefill "
        f"{split['prefill_ms']:,.1f} + client-side overhead {split['overhead_ms']:,.1f} "
        "(HTTP, the API layer, tokenizing, the first chunk's trip)"
    )
    if split.get("server_ttft_ms") is not None:
        console.print(f"  the server's own TTFT: {split['server_ttft_ms']:,.1f}")
    if split.get("prefix_cache_queries"):
        rate = split["prefix_hit_rate"] or 0.0
        console.print(
            f"  prefix cache: {split['prefix_cache_hits']:,} of {split['prefix_cache_queries']:,} prompt tokens "
            f"found cached ({rate:.0%})"
        )
    if split.get("kv_usage_peak") is not None:
        console.print(f"  KV cache in use: at most {split['kv_usage_peak']:.1%} of it")
    if split["server_wide"]:
        console.print(
            "  [yellow]caveat[/]: other requests ran or finished in the same windows: these numbers are server-wide"
        )
    elif split["source"] == "/metrics":
        console.print("  (nothing else ran: the server was idle before and after each request and counted only ours)")


def show_definitions(console, by_tool: dict) -> None:
    from ..latency.definitions import DEFINITIONS, TOOLS

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
                _opt(stats[f"median_{metric}_ms"]),
                _opt(stats[f"p90_{metric}_ms"]),
                DEFINITIONS[(tool, metric)],
            )
    console.print(table)
    console.print(
        "  GuideLLM's TPOT spreads the first token's wait over every token; its and AIPerf's ITL is vLLM's TPOT."
    )


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
            _opt(m["output_throughput"]),
            _opt(m["median_ttft_ms"]),
            _opt(m["median_tpot_ms"]),
            _opt(m["p90_tpot_ms"]),
            _opt(m["median_itl_ms"]),
            _opt(m["p99_itl_ms"]),
            _opt(split["queue_ms"]) if split else "–",
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


def show_cost(console, cost: dict) -> None:
    single = cost["single_stream"]
    console.print()
    console.print(
        f"[bold]Cost[/] at ${cost['usd_per_hour']:,.2f} an hour: one stream at a time "
        f"({_opt(single['tokens_per_s'])} tokens/s): ${_opt(single['usd_per_million'], 2)} per million output tokens"
    )
    if "best" in cost:
        best = cost["best"]
        console.print(
            f"  {best['concurrency']} at once ({_opt(best['tokens_per_s'])} tokens/s): "
            f"${_opt(best['usd_per_million'], 2)} per million output tokens"
        )


def show_groups(console, groups: dict) -> None:
    console.print()
    table = Table(box=None, header_style="bold")
    for column in ("group", "requests", "output tok/s", "TTFT median", "TPOT median", "ITL median", "E2EL median"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for name, m in groups.items():
        table.add_row(
            name or "–",
            str(m["completed"]),
            _opt(m["output_throughput"]),
            _opt(m["median_ttft_ms"]),
            _opt(m["median_tpot_ms"]),
            _opt(m["median_itl_ms"]),
            _opt(m["median_e2el_ms"]),
        )
    console.print(table)
