"""`tokenloop staircase` (what a step costs as the sequence grows) and `tokenloop latency` (TTFT,
ITL and the total a user waits for)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import UsageError
from . import server_staircase
from .common import byte_size, emit_json, number, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "staircase",
        help="time one loop step at growing lengths, with and without the KV cache",
        description="Per-step forward time of the embedded model at several sequence lengths, without a cache "
        "(all n tokens every step) and with the KV cache (one new token). Lengths are measured in a shuffled, "
        "interleaved order and repeated; each keeps its minimum and spread. Prints fits with R², the model's "
        "parameters, FLOPs and KV-cache bytes computed from its config, and a chart.",
    )
    p.add_argument(
        "--max-len", type=positive_int("--max-len"), default=256, help="longest sequence measured (default 256)"
    )
    p.add_argument(
        "--points",
        type=positive_int("--points"),
        default=6,
        help="how many lengths, evenly spaced up to --max-len (default 6)",
    )
    p.add_argument(
        "--repeats",
        type=positive_int("--repeats"),
        default=3,
        help="measurements per length; the minimum is kept (default 3)",
    )
    p.add_argument(
        "--threads",
        type=positive_int("--threads"),
        default=None,
        help="torch CPU threads (default: torch's choice, one per core; on a busy shared machine 1 is much steadier)",
    )
    p.add_argument("--plot", metavar="FILE", help="write a chart to FILE (.png or .svg)")
    p.add_argument("--json", action="store_true", help="print one JSON object (the data the web lesson draws)")
    p.add_argument(
        "--model",
        metavar="PATH",
        help="a local Hugging Face model folder or .gguf file (default: the embedded "
        "SmolLM2-135M-Instruct); a server's: --url here, or `tokenloop latency --url`",
    )
    p.add_argument(
        "--engine",
        choices=["transformers", "torch"],
        help="how the model runs: transformers (default) or torch, "
        "the fast path (its uncached staircase climbs the same way, several times faster)",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "int8", "int4"],
        help="the weights: float32 (default), or bfloat16/int8/int4 on --engine torch (default there: int4)",
    )
    server_staircase.add_options(p)
    p.set_defaults(func=cmd_staircase)

    p = sub.add_parser(
        "latency",
        help="time to first token and between tokens on a server, or the budget for given numbers",
        description="With --url: stream completions of growing length from an OpenAI-compatible server and time "
        "the first token (TTFT) and the gaps between tokens (ITL) client side; fit total = TTFT + (n - 1) × ITL; "
        "do the same for one request per token. With --ttft and --itl: the budget for --tokens, no server needed.",
    )
    p.add_argument("--url", help="the server's base URL, e.g. http://127.0.0.1:8080")
    p.add_argument(
        "--max-tokens", type=positive_int("--max-tokens"), default=64, help="longest answer measured (default 64)"
    )
    p.add_argument(
        "--points", type=positive_int("--points"), default=5, help="output lengths from 1 to --max-tokens (default 5)"
    )
    p.add_argument(
        "--repeats",
        type=positive_int("--repeats"),
        default=2,
        help="requests per length; their median is shown (default 2)",
    )
    p.add_argument("--prompt", default=None, help="the prompt sent (default: a short sentence)")
    p.add_argument("--ttft", type=number("--ttft"), help="budget: time to first token in ms")
    p.add_argument("--itl", type=number("--itl"), help="budget: time between tokens in ms")
    p.add_argument(
        "--tokens", type=positive_int("--tokens"), default=500, help="budget: answer length in tokens (default 500)"
    )
    p.add_argument(
        "--goodput",
        metavar="SLOS",
        help="with --url: service-level objectives in ms, e.g. ttft:500,tpot:50; a request counts toward "
        "goodput if it meets them all (as vLLM's bench)",
    )
    p.add_argument("--plot", metavar="FILE", help="with --url: write a chart to FILE (.png or .svg)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_latency)


def progress_bar(what: str) -> Progress:
    return Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


# --- staircase ---------------------------------------------------------------------------------
def cmd_staircase(args, console) -> int:
    if args.url:
        return server_staircase.cmd(args, console)
    from .. import charts, staircase
    from ..paths import open_embedded

    if args.plot:
        charts.check_path(args.plot)
    staircase.check(args.max_len, args.points, args.repeats, context_length=args.max_len)  # what needs no model
    backend = open_embedded(args.model, args.engine, args.dtype)  # in-process: it times the forward itself
    staircase.check(args.max_len, args.points, args.repeats, backend.context_length)
    busy = busy_warning(args.threads)
    if busy:
        print(busy, file=sys.stderr)
    with progress_bar(f"measuring {args.points} lengths × {args.repeats} repeats × 2") as bar:
        task = bar.add_task("", total=args.points * args.repeats * 2)
        result = staircase.measure(
            backend,
            args.max_len,
            args.points,
            args.repeats,
            threads=args.threads,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    data = result.to_json()
    if args.plot:
        charts.staircase_chart(data, args.plot)
    if args.json:
        emit_json(data)
    else:
        show_staircase(console, data, args.plot)
    return 0


def busy_warning(threads: int | None) -> str | None:
    """A hint when other processes already keep the cores busy: threads that must meet at every
    matrix multiply then wait for each other, and the times swing wildly."""
    import os

    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except OSError:  # no load average on this system
        return None
    if threads == 1 or load < cores * 0.75:
        return None
    return f"note: this machine is busy (load {load:.1f} on {cores} cores); --threads 1 gives much steadier times"


def _ms(value: float, spread: float) -> str:
    return f"{value:,.1f} ± {spread:,.1f}" if spread else f"{value:,.1f}"


def _si(x: float, unit: str) -> str:
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:,.2f} {prefix}{unit}"
    return f"{x:,.0f} {unit}"


def show_staircase(console, data: dict, plot: str | None) -> None:
    from ..charts import staircase_bars

    console.print(f"[bold]The staircase[/]: {data['model']}, {data['path']}, {data['threads']} CPU thread(s)")
    console.print(
        f"  {data['points']} lengths × {data['repeats']} repeats, shuffled and interleaved, {data['wall_s']:.0f} s"
    )
    table = Table(box=None, header_style="bold")
    for column in ("n", "no cache, ms", "tokens run", "KV cache, ms", "tokens run", "ratio"):
        table.add_column(column, justify="right")
    for p in data["series"]:
        table.add_row(
            str(p["length"]),
            _ms(p["uncached_ms"], p["uncached_spread_ms"]),
            str(p["uncached_tokens_in"]),
            _ms(p["cached_ms"], p["cached_spread_ms"]),
            str(p["cached_tokens_in"]),
            f"×{p['uncached_ms'] / p['cached_ms']:.1f}",
        )
    console.print(table)
    console.print("  (ms: the fastest of the repeats ± how much slower the slowest was)")
    for kind, label in (("uncached", "no cache"), ("cached", "KV cache")):
        fit = data["fits"][kind]
        console.print(f"  {label}: step ≈ {fit['formula']}  (R² {fit['r2']:.3f}, error {fit['rmse_ms']:.1f} ms)")
    noise = data["noise"]
    console.print(
        f"  noise: repeats of one length differed by up to {noise['uncached_max_spread_pct']:.0f} % (no cache), "
        f"{noise['cached_max_spread_pct']:.0f} % (cache)"
    )
    console.print()
    for line in staircase_bars(data):
        console.print("  " + line, style="cyan" if "▒" in line else "red", highlight=False)
    console.print("  █ no cache   ▒ KV cache")
    console.print()
    est, pred, n = data["estimate"], data["predicted"], data["max_len"]
    last = data["series"][-1]
    numbers = Table(title=f"From the config vs measured (n = {n})", box=None, header_style="bold", title_justify="left")
    numbers.add_column("")
    numbers.add_column("no cache", justify="right")
    numbers.add_column("KV cache", justify="right")
    numbers.add_row("parameters", f"{est['parameters']:,}", "")
    numbers.add_row("tokens run in the step at n", f"{n}", "1")
    numbers.add_row(
        "FLOPs of that step (estimate)",
        _si(est["flops_per_step_uncached_at_max"], "FLOP"),
        _si(est["flops_per_step_cached"], "FLOP"),
    )
    numbers.add_row("time of that step (measured)", f"{last['uncached_ms']:,.1f} ms", f"{last['cached_ms']:,.1f} ms")
    numbers.add_row(
        "FLOP rate reached",
        _si(pred["gflops_uncached_at_max"] * 1e9, "FLOP/s"),
        _si(pred["gflops_cached_at_max"] * 1e9, "FLOP/s"),
    )
    numbers.add_row("KV cache held", "none", f"{byte_size(est['kv_bytes_per_token'])}/token")
    numbers.add_row("", "", f"{byte_size(est['kv_bytes_at_max'])} at n")
    numbers.add_row(
        f"{n}-token generation: FLOPs", _si(est["total_flops_uncached"], "FLOP"), _si(est["total_flops_cached"], "FLOP")
    )
    numbers.add_row(
        f"{n}-token generation: time (fits)",
        f"{pred['generation_s_uncached']:,.1f} s",
        f"{pred['generation_s_cached']:,.1f} s",
    )
    console.print(numbers)
    ratio = est["total_flops_uncached"] / est["total_flops_cached"]
    console.print(f"  No cache: a generation's work grows like n² (here ×{ratio:.0f} the FLOPs).")
    console.print("  A cached step reaches a far lower FLOP rate: it reads every weight for one token.")
    if plot:
        console.print(f"  chart written to {plot}")


# --- latency -----------------------------------------------------------------------------------
def cmd_latency(args, console) -> int:
    from .. import latency

    budget_given = args.ttft is not None or args.itl is not None
    if args.url and budget_given:
        raise UsageError("give either --url (measure a server) or --ttft and --itl (the budget), not both")
    if not args.url:
        if args.ttft is None or args.itl is None:
            raise UsageError("give --url URL to measure a server, or both --ttft MS and --itl MS for the budget")
        data = latency.budget(args.ttft, args.itl, args.tokens)
        if args.json:
            emit_json(data)
        else:
            show_budget(console, data)
        return 0
    from .. import charts, latency_stats

    slos = latency_stats.parse_goodput(args.goodput)
    if args.plot:
        charts.check_path(args.plot)
    url = latency.check(args.url, args.max_tokens, args.points, args.repeats)
    rounds = len(latency.output_lengths(args.max_tokens, args.points)) + 1
    with progress_bar(f"requests to {url}") as bar:
        task = bar.add_task("", total=rounds * args.repeats)
        data = latency.measure(
            url,
            args.max_tokens,
            args.points,
            args.repeats,
            prompt=args.prompt or latency.PROMPT,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            slos=slos,
        )
    fit, loop = data["fit"], data["loop"]["fit"]
    data["budget"] = {
        "stream": latency.budget(max(fit["ttft_ms"], 0.0), fit["itl_ms"], args.tokens) if fit["itl_ms"] > 0 else None,
        "loop": latency.budget(max(loop["ttft_ms"], 0.0), loop["itl_ms"], args.tokens) if loop["itl_ms"] > 0 else None,
    }
    if args.plot:
        charts.latency_chart(data, args.plot)
    if args.json:
        emit_json(data)
    else:
        show_latency(console, data, args.tokens, args.plot)
        show_metrics(console, data["metrics"], data["definitions"])
    return 0


def _opt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def show_latency(console, data: dict, tokens: int, plot: str | None) -> None:
    from pathlib import PurePath

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
