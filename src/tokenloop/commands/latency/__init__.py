"""`tokenloop latency`: TTFT, ITL and the total a user waits for. One module per thing the user can
ask, so each reads alone:

- `budget`: `--ttft MS --itl MS`, the wait for given numbers, no server;
- `measured`: `--url`, a measured run in the serving ecosystem's own terms (vLLM bench's keys, the
  server's own split of TTFT, `--cost-per-hour`), with `--definitions` and `--concurrency` added on;
- `definitions`: `--definitions`, one set of requests under vLLM bench's, GuideLLM's and AIPerf's
  definitions side by side;
- `concurrency`: `--concurrency`, the same requests N at a time (batching);
- `account`: the server's own account of each request (a TTFT waterfall), cold or warm, the ITL
  histogram's floor;
- `report`: `--report FILE.html`, the run as one self-contained page;
- `saved`: `--load FILE`, the numbers again from a `--save` file.

Here: the flags (all of them, so `--help` is one page) and which of those runs they ask for. The
parts import only each other and `commands.common`, never another command."""

from __future__ import annotations

import argparse

from ...errors import UsageError
from ..common import number, positive_int
from .budget import show_given
from .measured import measure_server
from .saved import recompute

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
    p.add_argument(
        "--cache",
        choices=("cold", "warm"),
        default="cold",
        help="cold (default): every streamed request carries a fresh cache_salt where the server takes one, so no "
        "prefix cache serves it; warm: let the cache serve what it holds, and report how much it did",
    )
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
        "--rate",
        metavar="RATES",
        help="with --url: instead of --concurrency, send requests as they would arrive from many users, at each "
        "rate in requests a second, e.g. 1,2,4 (an open loop: a slow server lets a queue grow)",
    )
    p.add_argument(
        "--arrivals",
        choices=("poisson", "constant"),
        default="poisson",
        help="with --rate: exponential gaps between arrivals (poisson, seeded: a rerun sends at the same times; "
        "the default) or even ones (constant)",
    )
    p.add_argument(
        "--requests",
        type=positive_int("--requests"),
        help="with --concurrency: requests at each level (default: twice the level, at least 4); with --rate: "
        "requests at each rate (default: ten seconds' worth, at least 4)",
    )
    p.add_argument(
        "--time-cap",
        type=number("--time-cap"),
        metavar="S",
        help="with --concurrency or --rate: start no new request after S seconds at a level (default 60)",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="with --concurrency or --rate: allow a server that is not on this machine (load only a server you run)",
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
    p.add_argument(
        "--report",
        metavar="FILE.html",
        help="with --url: write the run as one self-contained HTML file (charts inline, definitions beside numbers)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_latency)


# options only a measured run (--url) uses: given with --load or the budget, they are refused, not ignored
MEASURED_ONLY = (
    "save", "plot", "report", "concurrency", "rate", "goodput", "cost_per_hour", "requests", "time_cap",
    "allow_remote", "chat", "prompt",
)  # fmt: skip


def cmd_latency(args, console) -> int:
    budget_given = args.ttft is not None or args.itl is not None
    if args.url and budget_given:
        raise UsageError("give either --url (measure a server) or --ttft and --itl (the budget), not both")
    if not args.url:
        mode = "--load recomputes a saved run" if args.load else "the budget (--ttft, --itl) measures nothing"
        unused = [name for name in MEASURED_ONLY if getattr(args, name) not in (None, False)]
        if unused and (args.load or budget_given):
            flag = "--" + unused[0].replace("_", "-")
            raise UsageError(f"{flag} is for a measured run (--url); {mode}: leave out {flag}")
    if args.load:
        return recompute(args, console)
    if not args.url:
        return show_given(args, console)
    return measure_server(args, console)
