"""`tokenloop staircase`: what one loop step costs as the sequence grows, without and with the KV
cache. On the embedded model it times the forward pass itself; with `--url` it times a server from
outside: a fresh n-token prompt's time to first token (no cache) against the gaps between streamed
tokens (the server's KV cache), and what its prefix cache does for a repeated prompt. What a user
waits for in all is `tokenloop latency` (commands/latency/)."""

from __future__ import annotations

import argparse
import sys

from rich.table import Table

from ..errors import UsageError, say
from ..terminal import progress_bar, titled
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
    p.add_argument(
        "--url",
        help="measure this OpenAI-compatible server instead, e.g. http://127.0.0.1:8000/v1: "
        "time to first token of fresh prompts against the gaps between streamed tokens",
    )
    p.add_argument(
        "--gaps",
        type=positive_int("--gaps"),
        default=8,
        help="with --url: tokens streamed after the first, whose gaps time the cached step (default 8)",
    )
    p.set_defaults(func=cmd_staircase)


# --- on the embedded model: the forward pass timed in process ------------------------------------
def cmd_staircase(args, console) -> int:
    if args.url:
        return on_server(args, console)
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

    console.print(titled("The staircase", f": {data['model']}, {data['path']}, {data['threads']} CPU thread(s)"))
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


# --- with --url: a server timed from outside --------------------------------------------------
def on_server(args, console) -> int:
    """`staircase --url`: the same two curves from a server's outside, and its prefix cache's hits."""
    from ..backends.server import ServerBackend
    from ..cost import server_staircase

    embedded = [f for f, v in (("--model", args.model), ("--engine", args.engine), ("--dtype", args.dtype)) if v]
    embedded += [f for f, v in (("--threads", args.threads), ("--plot", args.plot)) if v]
    if embedded:
        raise UsageError(f"{', '.join(embedded)}: for the embedded model's staircase; with --url drop them")
    backend = ServerBackend.from_args(args, log=say)

    def progress(p: server_staircase.Point) -> None:
        print(
            f"n={p.n}: {p.fresh_ms:,.1f} ms to the first token, {p.itl_ms or 0:,.2f} ms a token after", file=sys.stderr
        )

    try:
        data = server_staircase.measure(
            backend, args.max_len, args.points, args.repeats, args.gaps, on_point=None if args.json else progress
        )
    finally:
        backend.close()
    if args.json:
        emit_json(data)
        return 0
    console.print(titled("The staircase on the server", f": {data['model']}, {data['engine']}, {data['url']}"))
    table = Table("tokens", "no cache: fresh prompt (ms)", "with the cache: one token (ms)")
    for p in data["series"]:
        table.add_row(f"{p['n']:,}", f"{p['fresh_ms']:,.1f}", "–" if p["itl_ms"] is None else f"{p['itl_ms']:,.2f}")
    console.print(table)
    for name, fit in data["fits"].items():
        console.print(
            f"{ {'fresh': 'no cache', 'itl': 'with the cache'}[name] }: {fit['formula']} (R² {fit['r2']:.3f})"
        )
    hits = Table("send", "time to first token (ms)", "prompt tokens found in the cache")
    for h in data["hits"]:
        found = "not reported" if h["hit_tokens"] is None else f"{h['hit_tokens']:,.0f} of {h['prompt_tokens']:,}"
        hits.add_row(h["label"], f"{h['ttft_ms']:,.1f}", found)
    console.print(hits)
    return 0
