"""`tokenloop probe`: what an OpenAI-compatible server can do for the loop, tried live."""

from __future__ import annotations

import argparse

from .common import emit_json, number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="what your server can do: kind, model, tokenizer, token-id prompts, logprobs cap",
        description="Ask an OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, ...) what the "
        "token loop needs: its tokenizer endpoints, whether it takes the prompt as token ids, how many "
        "logprobs it gives, which distribution they are, and the shape they come in.",
    )
    p.add_argument("--url", metavar="URL", help="the server, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL)")
    p.add_argument("--api-key", metavar="KEY", help="the server's API key (default: $OPENAI_API_KEY)")
    p.add_argument(
        "--server-model", metavar="NAME", help="which served model (default: the first one /v1/models lists)"
    )
    p.add_argument(
        "--server-timeout",
        type=number("--server-timeout"),
        default=60.0,
        metavar="S",
        help="seconds to wait for each answer (default 60)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_probe)


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def describe(caps) -> list[tuple[str, str]]:
    """The probe's findings as (label, sentence) rows."""
    checks = caps.checks
    version = f" {caps.version}" if caps.version else ""
    context = f"{caps.context_length} tokens" if caps.context_length else "not reported (the server's error will say)"
    tokenizer = (
        "none: text only" if caps.tokenize is None else f"{caps.tokenize} and {caps.detokenize or 'no detokenize'}"
    )
    if "detokenize_round_trip" in checks:
        tokenizer += f" (round trip {'exact' if checks['detokenize_round_trip'] else 'NOT exact'})"
    if caps.prompt_ids:
        prompt = f"yes: the loop sends token ids to {caps.endpoint}, never re-encoded text"
    else:
        refused = f" (refused: {checks['ids_refused']})" if "ids_refused" in checks else ""
        prompt = f"no{refused}: the loop falls back to sending text, which the server re-tokenizes"
    asked, got = checks.get("logprobs_asked"), checks.get("logprobs_returned")
    if "logprobs_refused" in checks:
        cap = f"{caps.max_logprobs}, the server's cap (it said: {checks['logprobs_refused']}); tokenloop lowers --show to it"
    elif checks.get("keyed_by") == "text" and got is not None and asked is not None and got < asked:
        cap = f"at least {got}: asked for {asked}, got {got}; the rest were token strings that print alike, merged in one key"
    elif caps.max_logprobs is not None:
        cap = f"{caps.max_logprobs}: asked for {asked}, it returned {got} without saying why"
    else:
        cap = f"at least {got}: no cap found (asked for {asked})"
    keyed = {"id": "token ids", "token_id:N": "'token_id:N' keys (ids)", "text": "token strings (can collide)"}.get(
        checks.get("keyed_by"), "nothing"
    )
    shape = f"{checks.get('shape', '?')} logprobs keyed by {keyed}"
    reports = ", ".join(checks.get("reports", [])) or "no timings or cached-token counts"
    return [
        ("server", f"{caps.kind}{version} at {caps.url}"),
        ("model", f"{caps.model} (of {len(caps.models)} served)"),
        ("context", context),
        ("tokenizer", tokenizer),
        ("token-id prompt", prompt),
        ("logprobs", cap),
        ("distribution", caps.distribution),
        ("shape", shape),
        ("end tokens", ", ".join(map(str, caps.eos_ids)) or "learned when the server stops on one"),
        ("reports", reports),
        *response_flags(checks),
        *families(checks.get("metric_families")),
        (
            "one call",
            f"{checks.get('request_ms', 0):.1f} ms for {checks.get('prompt_tokens', 0)} prompt tokens and {got} logprobs",
        ),
    ]


# vLLM's per-response extras: what tokenloop reads from each, and the server flag that sends it
RESPONSE_FLAGS = {
    "per_request_metrics": ("per-request metrics", "each request's queue and TTFT", "--enable-per-request-metrics"),
    "prompt_tokens_details": (
        "cached tokens",
        "usage.prompt_tokens_details.cached_tokens",
        "--enable-prompt-tokens-details",
    ),
}


def response_flags(checks: dict) -> list[tuple[str, str]]:
    rows = []
    for key, (label, what, flag) in RESPONSE_FLAGS.items():
        if key in checks:
            rows.append((label, f"yes ({what})" if checks[key] else f"no: start the server with {flag} for {what}"))
    return rows


def families(rows: list[dict] | None) -> list[tuple[str, str]]:
    """The /metrics families tokenloop reads, grouped by what this server does with them."""
    if rows is None:
        return [("/metrics", "none served: the server-wide split of TTFT and the saturation signals are off")]
    out = []
    for status, label in (("present", "present"), ("renamed", "renamed"), ("hidden", "hidden"), ("off", "off")):
        found = [r for r in rows if r["status"] == status]
        if not found:
            continue
        if status == "present":
            text = ", ".join(r["name"] for r in found)
        else:
            text = "; ".join(f"{r['name']}: {r['detail']}" for r in found)
        out.append((f"/metrics {label}", text))
    return out


def cmd_probe(args, console) -> int:
    from ..backends.server import ServerBackend

    backend = ServerBackend.from_args(args, log=lambda note: None)  # the findings below say it all
    caps = backend.probe()
    if args.json:
        emit_json(caps.to_json())
        return 0
    rows = describe(caps)
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        console.print(f"{label:<{width}}  {text}", markup=False, highlight=False, soft_wrap=True)
    return 0
