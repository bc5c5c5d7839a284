"""`tokenloop staircase`: what a step costs as the sequence grows (`tokenloop latency`, what a user
waits for, is commands/latency.py)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import server_staircase
from .common import byte_size, emit_json, positive_int


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
    from .. import charts
    from ..backends.engines import open_embedded
    from ..cost import staircase

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
