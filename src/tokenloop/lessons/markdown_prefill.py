"""Lesson 3's live numbers as Markdown, by the step's `live` key (merged into
`markdown_live.WRITERS`): each writer takes the result as its route returned it, the same dict the
page draws (`web/live_prefill.py`)."""

from __future__ import annotations

import json
from collections.abc import Callable


def _ms(x) -> str:
    return "–" if x is None else f"{x:.1f}"


def _mb(x) -> str:
    return f"{x / 1e6:,.1f} MB"


def write_phases(r: dict, live: dict) -> list[str]:
    where = "on the server, each prompt new to its cache" if r["on"] == "server" else "in this process"
    rows = [f"| {s['n']} | {_ms(s['ttft_ms'])} | {_ms(s['itl_ms'])} |" for s in r["series"]]
    return [
        f"Measured {where} (medians of {r['repeats']} runs):",
        "",
        "| prompt tokens | ms to first token (prefill) | ms between later tokens (decode) |",
        "|---|---|---|",
        *rows,
        "",
        f"{r['length_ratio']:.1f}× the prompt: {r['ttft_ratio']:.1f}× the time to first token"
        + (f", {r['itl_ratio']:.2f}× the time between tokens" if r.get("itl_ratio") else "")
        + f". The first-token line: {r['fit']['formula']} (R² {r['fit']['r2']:.3f}).",
    ]


def write_token_cost(r: dict, live: dict) -> list[str]:
    if r["ratio"] is None:
        return [
            f"Measured: the first-token line did not rise (slope {r['slope_ms_per_token']:.4f} ms per token): no ratio."
        ]
    return [
        f"Measured: one decode step {_ms(r['itl_ms'])} ms; one more prompt token {r['slope_ms_per_token']:.4f} ms "
        f"(the slope of step 1's line). An output token cost {r['ratio']:.0f}× a prompt token."
    ]


def write_answer_vs_prompt(r: dict, live: dict) -> list[str]:
    a, p = r["long_answer"], r["long_prompt"]
    projected = (
        f"; {a['timed_steps']} steps timed, the other {a['projected_steps']} projected at their median {_ms(a['step_ms'])} ms"
        if a["projected_steps"]
        else ""
    )
    return [
        f"Measured: a {r['tokens']}-token prompt with a 1-token answer took {_ms(p['ms'])} ms; a {r['tokens']}-token "
        f"answer to a {r['short_prompt_tokens']}-token prompt took {a['ms'] / 1000:.1f} s (first token {_ms(a['first_ms'])} ms"
        f"{projected}): {r['ratio']:.1f}× as long."
    ]


def write_positions(r: dict, live: dict) -> list[str]:
    rows = [
        f"| {x['position']} | `{json.dumps(x['token'], ensure_ascii=False)}` | `{json.dumps(x['top1'], ensure_ascii=False)}` "
        f"{100 * x['top1_prob']:.1f}% | {'`' + json.dumps(x['next'], ensure_ascii=False) + '`' if x['next'] is not None else '(the answer)'} |"
        for x in r["rows"]
    ]
    if r["on"] == "server":
        head = (
            f"Measured on the server: its own prefill of {r['tokens']} prompt tokens, read back with prompt_logprobs: a "
            f"top-1 at every position ({r['hits']} of {r['tokens'] - 1} were the prompt's own next token)."
        )
    else:
        head = (
            f"Measured in this process: one forward over {r['tokens']} prompt tokens gave logits {r['shape'][0]} × "
            f"{r['shape'][1]:,}: a prediction at every position ({r['hits']} of {r['tokens'] - 1} were the prompt's own "
            "next token)." + (f" {r['why_not_server']}." if r.get("why_not_server") else "")
        )
    return [
        head,
        "",
        "| position | prompt token | top-1 for the next | next in the prompt |",
        "|---|---|---|---|",
        *rows,
    ]


def write_ttft(r: dict, live: dict) -> list[str]:
    if r["on"] == "embedded":
        s = r["split"]
        return [
            f"Measured in this process, a {r['prompt_tokens']}-token prompt (medians of {len(r['runs'])} runs): first "
            f"token after {_ms(s['client_ttft_ms'])} ms: tokenize {_ms(s['tokenize_ms'])} ms, forward (the prefill) "
            f"{_ms(s['forward_ms'])} ms, the rest {_ms(s['rest_ms'])} ms. No queue and no network in process."
        ]
    a, split = r["account"], r["split"]
    if a:
        rows = [
            f"| {i} | {_ms(p['client_ttft_ms'])} | {_ms(p['queue_ms'])} | {_ms(p['server_ttft_ms'])} | {_ms(p['rest_ms'])} |"
            for i, p in enumerate(a["per_request"], 1)
        ]
        m = {k: (v or {}).get("median") for k, v in a["stats"].items()}
        return [
            f"Measured on the server, {a['requests']} requests of a {r['prompt_tokens']}-token prompt ({r['warmth']['headline']}), "
            f"split by the server's own account ({a['source']}), ms:",
            "",
            "| request | client TTFT | queue | server TTFT (scheduled to first token) | the rest |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Medians: client {_ms(m['client_ttft_ms'])} ms = queue {_ms(m['queue_ms'])} + server {_ms(m['server_ttft_ms'])} "
            f"+ the rest {_ms(m['rest_ms'])}.",
        ]
    if split:
        server = split.get("prefill_ms", split.get("server_ttft_ms"))
        wide = " (server-wide: other requests ran meanwhile)" if split.get("server_wide") else ""
        return [
            f"Measured on the server, from {split['source']}{wide}: means client {_ms(split['client_ttft_ms'])} ms, queue "
            f"{_ms(split.get('queue_ms'))} ms, prefill {_ms(server)} ms, the rest {_ms(split.get('overhead_ms'))} ms."
        ]
    return [
        "Measured on the server: client TTFT "
        + ", ".join(f"{_ms(x)}" for x in r["client_ttft_ms"])
        + " ms; the server gave no account of its own to split it."
    ]


def write_attention(r: dict, live: dict) -> list[str]:
    rows = [
        f"| {p['tokens']} | {_mb(p['score_bytes'])} | {_mb(p['naive_peak_bytes'])} | {_ms(p['naive_ms'])} | "
        f"{_mb(p['fused_peak_bytes'])} | {_ms(p['fused_ms'])} | {p['max_abs_diff']:.1e} |"
        for p in r["points"]
    ]
    t = r["projected"]
    out = [
        f"Measured: one attention layer, {r['heads']} heads of {r['head_dim']}, {r['dtype']}; peak is this process's "
        "high-water mark above what it held before.",
        "",
        "| tokens | one score matrix | naive peak | naive ms | fused peak | fused ms | max output diff |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    if not t["measured"]:
        out += [
            "",
            f"Projected to {t['tokens']:,} tokens from the growth between {t['from'][0]} and {t['from'][-1]} "
            f"(∝ n^{t['exponent']:.2f}): naive peak {_mb(t['naive_peak_bytes'])}, {t['naive_ms'] / 1000:.1f} s; "
            f"fused {t['fused_ms'] / 1000:.2f} s (not run: this machine must not swap).",
        ]
    return out


WRITERS: dict[str, Callable[[dict, dict], list[str]]] = {
    "prefill_phases": write_phases,
    "token_cost": write_token_cost,
    "answer_vs_prompt": write_answer_vs_prompt,
    "prompt_positions": write_positions,
    "attention_memory": write_attention,
    "ttft_account": write_ttft,
}
