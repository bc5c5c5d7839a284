"""`tokenloop latency`: TTFT, ITL and the total a user waits for, measured on a server in the
serving ecosystem's own terms (vLLM bench's keys, GuideLLM's and AIPerf's definitions side by side,
the server's own split of TTFT, batching at several concurrencies, cost), or the budget for given
numbers."""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from .common import emit_json, number, positive_int

# The default run: 4 lengths up to 32 tokens, 10 of each (40 requests, so a p90 is not the larger of
# two), and 3 per-token loops: about a minute against vLLM serving the embedded model on this
# 2-core CPU (35-60 ms a token; 74 s with --concurrency 1,2,4,8 as well).
MAX_TOKENS, POINTS, REPEATS = 32, 4, 10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "latency",
        help="time to first token and between tokens on a server, or the budget for given numbers",
        description="With --url: stream completions of growing length from an OpenAI-compatible server and time "
        "the first token (TTFT) and the gaps between tokens (ITL) client side; fit total = TTFT + (n - 1) × ITL; "
        "do the same for one request per token; report mean/median/std/p90/p99 under vLLM bench's keys. The "
        f"defaults ({POINTS} lengths up to {MAX_TOKENS} tokens × {REPEATS} repeats) take about a minute on a "
        "135M-parameter model served on a 2-core CPU. With --ttft and --itl: the budget for --tokens, no server "
        "needed. With --load: the numbers again from a --save file.",
    )
    p.add_argument("--url", help="the server's base URL, e.g. http://127.0.0.1:8080")
    p.add_argument(
        "--max-tokens",
        type=positive_int("--max-tokens"),
        default=MAX_TOKENS,
        help=f"longest answer measured (default {MAX_TOKENS})",
    )
    p.add_argument(
        "--points",
        type=positive_int("--points"),
        default=POINTS,
        help=f"output lengths from 1 to --max-tokens (default {POINTS})",
    )
    p.add_argument(
        "--repeats",
        type=positive_int("--repeats"),
        default=REPEATS,
        help=f"requests per length, enough for a p90 to mean something (default {REPEATS}; "
        "the default run is about a minute on the embedded model served on this CPU)",
    )
    p.add_argument("--prompt", default=None, help="the prompt sent (default: a short sentence)")
    p.add_argument("--chat", action="store_true", help="stream /v1/chat/completions (the prompt as one user message)")
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
    p.add_argument(
        "--definitions",
        action="store_true",
        help="also print TTFT, TPOT and ITL as vLLM's bench, GuideLLM and AIPerf define them, from the same requests",
    )
    p.add_argument(
        "--concurrency",
        metavar="LEVELS",
        help="with --url: also send streamed requests N at a time for each level, e.g. 1,2,4,8: "
        "output throughput against each user's TPOT and ITL (batching)",
    )
    p.add_argument(
        "--requests",
        type=positive_int("--requests"),
        help="with --concurrency: requests at each level (default: twice the level, at least 4)",
    )
    p.add_argument(
        "--time-cap",
        type=number("--time-cap"),
        metavar="S",
        help="with --concurrency: start no new request after S seconds at a level (default 60)",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="with --concurrency: allow a server that is not on this machine (load only a server you run)",
    )
    p.add_argument(
        "--cost-per-hour",
        type=number("--cost-per-hour"),
        metavar="USD",
        help="what the server costs an hour: prints the cost of a million output tokens at the measured rates",
    )
    p.add_argument("--save", metavar="FILE", help="with --url: write every request's raw timestamps as JSON lines")
    p.add_argument("--load", metavar="FILE", help="recompute the numbers from a --save file; no server needed")
    p.add_argument("--plot", metavar="FILE", help="with --url: write a chart to FILE (.png or .svg)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_latency)


def cmd_latency(args, console) -> int:
    from ..latency import budget as latency
    from . import latency_view as view

    if args.load:
        return recompute(args, console)
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
            view.show_budget(console, data)
        return 0
    from .. import charts
    from ..latency import concurrency
    from ..measure import bench_stats as latency_stats
    from ..measure import streamed

    # every option is checked, and the load planned, before the first request
    slos = latency_stats.parse_goodput(args.goodput)
    if args.plot:
        charts.check_path(args.plot)
    streamed.check_save(args.save)
    if args.cost_per_hour is not None and not 0 < args.cost_per_hour < float("inf"):
        raise UsageError(f"--cost-per-hour must be dollars above 0, not {args.cost_per_hour:g}")
    url = latency.check(args.url, args.max_tokens, args.points, args.repeats)
    prompt = args.prompt or latency.PROMPT
    plans = []
    if not args.concurrency and (args.requests or args.time_cap is not None or args.allow_remote):
        raise UsageError(
            "--requests, --time-cap and --allow-remote shape --concurrency: add e.g. --concurrency 1,2,4,8"
        )
    if args.concurrency:
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
    sizes = len(latency.output_lengths(args.max_tokens, args.points))
    with view.progress_bar(f"requests to {url}") as bar:
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
        )
    records = data.pop("records")
    if plans:
        data["concurrency"] = run_levels(url, plans, slos)
        records += data["concurrency"].pop("records")
    fit, loop = data["fit"], data["loop"]["fit"]
    data["budget"] = {
        "stream": latency.budget(max(fit["ttft_ms"], 0.0), fit["itl_ms"], args.tokens) if fit["itl_ms"] > 0 else None,
        "loop": latency.budget(max(loop["ttft_ms"], 0.0), loop["itl_ms"], args.tokens) if loop["itl_ms"] > 0 else None,
    }
    if args.cost_per_hour is not None:
        data["cost"] = costs(args.cost_per_hour, data)
    if args.save:
        streamed.save(args.save, records)
    if args.plot:
        charts.latency_chart(data, args.plot)
        if plans:
            data["concurrency"]["plot"] = str(charts.concurrency_chart(data, args.plot))
    if args.json:
        emit_json(data)
        return 0
    view.show_latency(console, data, args.tokens, args.plot)
    view.show_metrics(console, data["metrics"], data["definitions"])
    view.show_split(console, data["split"])
    if args.definitions:
        view.show_definitions(console, data["by_tool"])
    if plans:
        view.show_concurrency(console, data["concurrency"])
    if "cost" in data:
        view.show_cost(console, data["cost"])
    if args.save:
        console.print(f"  raw timestamps of {len(records)} requests written to {args.save}")
    return 0


def run_levels(url: str, plans: list, slos: dict) -> dict:
    from ..backends.server import Client
    from ..latency import concurrency
    from ..latency.budget import model_name
    from . import latency_view as view

    client = Client(url, timeout=120)
    try:
        model = model_name(client)
        with view.progress_bar("concurrency levels") as bar:
            task = bar.add_task("", total=sum(len(p.requests) for p in plans))
            out = concurrency.measure(
                client, model, plans, slos, lambda done, total: bar.update(task, completed=done, total=total)
            )
    finally:
        client.close()
    top = concurrency.best(out["levels"])
    out["best"] = top["concurrency"] if top else None
    return out


def costs(usd_per_hour: float, data: dict) -> dict:
    """Cost per million output tokens: one stream at a time, and at the best concurrency measured."""
    from ..latency import concurrency
    from ..latency.budget import cost_per_million

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
            "tokens_per_s": rate,
            "usd_per_million": cost_per_million(usd_per_hour, rate),
        }
    return out


def recompute(args, console) -> int:
    """The numbers of a --save file, from its records alone."""
    from ..latency import definitions as latency_definitions
    from ..measure import streamed
    from . import latency_view as view

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
    }
    if args.json:
        emit_json(data)
        return 0
    console.print(f"[bold]{len(records)} requests[/] from {args.load}")
    view.show_definitions(console, data["by_tool"])
    view.show_groups(console, data["groups"])
    return 0


def span_s(records: list) -> float:
    """A group's wall time: one at a time, the sum of their times; together, first sent to last token."""
    from ..measure.streamed import span_s as together

    if records[0].group.startswith("concurrency"):
        return together(records)
    return sum(r.total_ms for r in records) / 1000
