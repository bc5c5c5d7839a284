"""`tokenloop next` (one step) and `tokenloop run` (the loop)."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from .common import add_backend_options, emit_json, number, open_backend, positive_int, read_prompt, seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "next",
        help="one step: the next-token distribution for a prompt",
        description="One forward pass: the probability of every candidate for the next token (raw softmax). "
        "The same as /v1/completions with max_tokens 1 and logprobs 8.",
    )
    p.add_argument("prompt", help="the text so far ('-' reads standard input)")
    p.add_argument("--top-k", type=positive_int("--top-k"), default=8, help="how many candidates to show (default 8)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_backend_options(p)
    p.set_defaults(func=cmd_next)

    p = sub.add_parser(
        "run",
        help="the loop: pick, append, repeat until a stop",
        description="Generate token by token, showing every step's distribution, pick and time. Greedy unless --temperature > 0.",
    )
    p.add_argument("prompt", help="the text so far ('-' reads standard input)")
    p.add_argument("--max-new", type=positive_int("--max-new"), default=24, help="most new tokens (default 24)")
    p.add_argument(
        "--temperature", type=number("--temperature"), default=0.0, help="0 = greedy (default); above 0 samples"
    )
    p.add_argument(
        "--top-k", type=positive_int("--top-k"), default=None, help="sample only among the k most likely tokens"
    )
    p.add_argument(
        "--top-p",
        type=number("--top-p"),
        default=None,
        help="sample only among the smallest set whose mass reaches p, in (0, 1]",
    )
    p.add_argument("--seed", type=seed, default=None, help="seed for sampling, for a reproducible run")
    p.add_argument("--show", type=positive_int("--show"), default=8, help="candidates shown per step (default 8)")
    p.add_argument(
        "--no-cache", action="store_true", help="no KV cache: run the whole sequence through the model every step"
    )
    p.add_argument(
        "--chat", action="store_true", help="wrap the prompt in the model's chat template (default: raw completion)"
    )
    p.add_argument("--json", action="store_true", help="JSON lines: one object per step, then a summary")
    add_backend_options(p)
    p.set_defaults(func=cmd_run)


def cmd_next(args, console) -> int:
    from ..loop import next_token, prompt_ids
    from ..terminal import LoopView

    if args.stream or args.server_sample:
        raise UsageError(
            "next shows one step, which no server picks or streams: --stream and --server-sample are for run"
        )
    prompt = read_prompt(args)
    backend = open_backend(args)
    result = next_token(backend, prompt_ids(backend, prompt, args.chat), args.top_k)
    if args.json:
        emit_json(result.to_json())
    else:
        LoopView(console, prompt).next_token(result)
    return 0


def cmd_run(args, console) -> int:
    from ..loop import generate, prompt_ids
    from ..records import Done
    from ..sampling import Sampler
    from ..terminal import LoopView

    prompt = read_prompt(args)
    sampler = Sampler(args.temperature, args.top_k, args.top_p)
    backend = open_backend(args)
    ids = prompt_ids(backend, prompt, args.chat)
    view = LoopView(console, backend.decode(ids) if args.chat else prompt)
    # one loop for every backend; a server may pick or stream for it (--server-sample, --stream)
    for record in generate(
        backend, ids, args.max_new, sampler, cache=not args.no_cache, show=args.show, seed=args.seed
    ):
        if args.json:
            emit_json(record.to_json())
        elif isinstance(record, Done):
            view.done(record)
        else:
            view.step(record)
    return 0
