"""`tokenloop latency --url URL`: a measured run. Completions of growing length are streamed from the
server and timed client side: time to first token (TTFT), the gaps between tokens (ITL), and the
fit total = TTFT + (n - 1) × ITL; the same again with one request per token. Reported under vLLM
bench's keys beside each definition, with the server's own split of TTFT where it tells it, the
budget for `--tokens`, and with `--cost-per-hour`, the cost of a million output tokens."""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from pathlib import PurePath

from rich.table import Table

from ...errors import UsageError
from ...terminal import progress_bar
from ..common import emit_json, or_dash
from .account import show_account, show_floor, show_warmth
from .concurrency import plan_levels, run_levels, show_concurrency
from .definitions import show_definitions
from .report import check_report, write_report


def measure_server(args, console) -> int:
    from ... import charts
    from ...latency import budget as latency
    from ...measure import bench_stats, streamed

    # every option is checked, and the load planned, before the first request
    slos = bench_stats.parse_goodput(args.goodput)
    if args.plot:
        charts.check_path(args.plot)
    check_report(args.report)
    if args.cost_per_hour is not None and not 0 < args.cost_per_hour < float("inf"):
        raise UsageError(f"--cost-per-hour must be dollars above 0, not {args.cost_per_hour:g}")
    url = latency.check(args.url, args.max_tokens, args.points, args.repeats)
    prompt = args.prompt or latency.PROMPT
    plans = plan_levels(args, url, prompt, cold=args.cache == "cold")
    recorder = streamed.Recorder(args.save) if args.save else None  # the last check: it creates the file
    try:
        with recorder or nullcontext():
            data, records = _run(args, url, prompt, plans, slos)
    except KeyboardInterrupt:
        if recorder is not None and recorder.count:
            _show_kept(args, console, recorder)
        raise
    return _finish(args, console, data, records, plans, recorder)


def _show_kept(args, console, recorder) -> None:
    """Interrupted: the completed requests are in the --save file; their numbers, from it."""
    from .saved import recompute

    console.print(f"[bold]Interrupted[/]: {recorder.said()}; their numbers:")
    try:
        recompute(
            argparse.Namespace(**{**vars(args), "url": None, "ttft": None, "itl": None, "load": recorder.path}), console
        )
    except Exception as e:  # noqa: BLE001 - the file is kept whatever happens here
        console.print(f"  (not shown: {e}); read them with tokenloop latency --load {recorder.path}")


def _run(args, url: str, prompt: str, plans: list, slos) -> tuple[dict, list]:
    from ...latency import budget as latency

    sizes = len(latency.output_lengths(args.max_tokens, args.points))
    with progress_bar(f"requests to {url}") as bar:
        task = bar.add_task("", total=sizes * args.repeats + latency.loop_rounds(args.repeats))
        data = latency.measure(
            url,
            args.max_tokens,
            args.points,
            args.repeats,
            prompt=prompt,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            slos=slos,
            chat=args.chat,
            cache=args.cache,
        )
    records = data.pop("records")
    if plans:
        data["concurrency"] = run_levels(url, plans, slos)
        records += data["concurrency"].pop("records")
    return data, records


def _finish(args, console, data: dict, records: list, plans: list, recorder) -> int:
    from ... import charts
    from ...latency import budget as latency

    fit, loop = data["fit"], data["loop"]["fit"]
    data["budget"] = {
        "stream": latency.budget(max(fit["ttft_ms"], 0.0), fit["itl_ms"], args.tokens) if fit["itl_ms"] > 0 else None,
        "loop": latency.budget(max(loop["ttft_ms"], 0.0), loop["itl_ms"], args.tokens) if loop["itl_ms"] > 0 else None,
    }
    if args.cost_per_hour is not None:
        data["cost"] = costs(args.cost_per_hour, data)
    late, plot, report = [], args.plot, args.report  # a file that fails after the run: said; the results print
    if plot:
        try:
            charts.latency_chart(data, plot)
            if plans:
                data["concurrency"]["plot"] = str(charts.concurrency_chart(data, plot))
                data["concurrency"]["saturation_plot"] = str(charts.saturation_chart(data, plot))
        except OSError as e:
            late.append(f"--plot {plot}: can't write it ({e.strerror or e}); the numbers above stand")
            plot = None
    if report:
        try:
            data["report"] = write_report(data, report)
        except OSError as e:
            late.append(f"--report {report}: can't write it ({e.strerror or e}); the numbers above stand")
            report = None
    if recorder is not None and recorder.failed:
        late.append(recorder.said())
    if args.json:
        emit_json(data)
    else:
        _show(console, args, data, plans, plot, report, recorder)
    for line in late:
        print(f"tokenloop: {line}", file=sys.stderr)
    return 1 if late else 0


def _show(console, args, data: dict, plans: list, plot: str | None, report: str | None, recorder) -> None:
    show_warmth(console, data["warmth"])
    show_latency(console, data, args.tokens, plot)
    show_metrics(console, data["metrics"], data["definitions"])
    show_split(console, data["split"])
    show_account(console, data["account"])
    show_floor(console, data["histogram_floor"])
    if args.definitions:
        show_definitions(console, data["by_tool"])
    if plans:
        show_concurrency(console, data["concurrency"])
    if "cost" in data:
        show_cost(console, data["cost"])
    if recorder is not None and not recorder.failed:
        console.print(f"  {recorder.said()}")
    if report:
        console.print(f"  report written to {report}")


def costs(usd_per_hour: float, data: dict) -> dict:
    """Cost per million output tokens: one stream at a time, and at the best concurrency measured."""
    from ...latency import concurrency
    from ...latency.budget import cost_per_million

    single = data["metrics"]["output_throughput"]
    out = {
        "usd_per_hour": usd_per_hour,
        "single_stream": {"tokens_per_s": single, "usd_per_million": cost_per_million(usd_per_hour, single)},
    }
    top = concurrency.best(data["concurrency"]["levels"]) if "concurrency" in data else None
    if top:
        rate = top["metrics"]["output_throughput"]
        out["best"] = {
            "concurrency": top["concurrency"],
            "rate": top.get("rate"),
            "tokens_per_s": rate,
            "usd_per_million": cost_per_million(usd_per_hour, rate),
        }
    return out


def show_latency(console, data: dict, tokens: int, plot: str | None) -> None:
    from ...charts import bars

    console.print(f"[bold]Latency[/]: {PurePath(data['model']).name} at {data['url']}")
    console.print(f"  {data['points']} answer lengths × {data['repeats']} repeats; medians; ms")
    table = Table(box=None, header_style="bold")
    for column in ("tokens", "TTFT", "ITL", "total", "server: prompt", "server: ITL", "1 call/token: total"):
        table.add_column(column, justify="right")
    for p, q in zip(data["series"], data["loop"]["series"]):
        table.add_row(
            str(p["tokens"]),
            or_dash(p["ttft_ms"]),
            or_dash(p["itl_ms"]),
            or_dash(p["total_ms"]),
            or_dash(p["server_prompt_ms"]),
            or_dash(p["server_itl_ms"] if p["tokens"] > 1 else None),
            or_dash(q["total_ms"]),
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
            f"  the server's own timings: prompt {or_dash(server['prompt_ms'])} ms, {or_dash(server['itl_ms'])} ms per token"
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


def show_metrics(console, m: dict, definitions: dict) -> None:
    """Every streamed request together, in vLLM bench's terms, each metric beside its definition."""
    console.print()
    console.print(f"[bold]All {m['completed']} streamed requests[/] (one at a time), in vllm bench serve's terms; ms")
    table = Table(box=None, header_style="bold")
    for column in ("metric", "mean", "median", "std", "p90", "p99", "definition"):
        table.add_column(column, justify="left" if column in ("metric", "definition") else "right")
    for name, text in definitions.items():
        stats = [m[f"{stat}_{name}_ms"] for stat in ("mean", "median", "std", "p90", "p99")]
        table.add_row(name.upper(), *(or_dash(v) for v in stats), text)
    console.print(table)
    console.print(
        f"  output throughput {or_dash(m['output_throughput'])} tokens/s, {or_dash(m['request_throughput'], 2)} requests/s"
    )
    if "request_goodput" in m:
        slos = ", ".join(f"{k} ≤ {v:g} ms" for k, v in m["goodput_slos_ms"].items())
        console.print(
            f"  goodput ({slos}): {or_dash(m['request_goodput'], 2)} requests/s, "
            f"{100 * (m['goodput_share'] or 0):.0f}% of the requests met them all"
        )


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


def show_cost(console, cost: dict) -> None:
    single = cost["single_stream"]
    console.print()
    console.print(
        f"[bold]Cost[/] at ${cost['usd_per_hour']:,.2f} an hour: one stream at a time "
        f"({or_dash(single['tokens_per_s'])} tokens/s): ${or_dash(single['usd_per_million'], 2)} per million output tokens"
    )
    if "best" in cost:
        best = cost["best"]
        who = f"{best['concurrency']} at once" if best.get("rate") is None else f"{best['rate']:g} arriving a second"
        console.print(
            f"  {who} ({or_dash(best['tokens_per_s'])} tokens/s): "
            f"${or_dash(best['usd_per_million'], 2)} per million output tokens"
        )
