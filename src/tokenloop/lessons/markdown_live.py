"""The live numbers of a lesson's steps as Markdown, by the step's `live` key (`WRITERS`), for
`lessons.markdown.render`. Each writer takes the result as its route or demo returned it (the same
dict the page draws) and says what was measured in a sentence or a small table; where the result
came from (its `source`) is written under it by the renderer, the same line for every writer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from .markdown_prefill import WRITERS as PREFILL_WRITERS
from .markdown_prefix import WRITERS as PREFIX_WRITERS
from .markdown_tokens import WRITERS as TOKEN_WRITERS


def write_next(r: dict, live: dict) -> list[str]:
    rows = [f"| {i} | {cell(quoted(c['token']))} | {percent(c['prob'])} |" for i, c in enumerate(r["top"], 1)]
    return [
        f"Measured: {r['model']} ({r['backend']}), one forward pass of {r['ms']:.1f} ms, {r['distribution']} distribution "
        f"of the next token after the lesson's prompt ({len(r['prompt_ids'])} tokens). "
        f"The top token got {percent(r['top'][0]['prob'])}.",
        "",
        "| rank | token | probability |",
        "|---|---|---|",
        *rows,
        f"| | everything else | {percent(r['other'])} |",
        *(["", f"The same numbers again: `{r['again']}`."] if r.get("again") else []),
    ]


def write_vocab(r: dict, live: dict) -> list[str]:
    size = r.get("vocab_size")
    if not size:
        return [f"Measured: {r['model']} sits behind a server, which returns only its top candidates."]
    return [f"Measured: {r['model']} has a vocabulary of {size:,} tokens, so every step gives {size:,} probabilities."]


def write_training(r: dict, live: dict) -> list[str]:
    c = r["cost"]
    return [
        f"Measured: training text {quoted(r['text'])}; after the probe {quoted(r['probe'])} the target "
        f"{quoted(r['target']['token'])} had {percent(r['target_prob_before'])} before and "
        f"{percent(r['target_prob_after'])} after {len(r['losses'])} training steps "
        f"(loss {r['losses'][0]:.3f} → {r['losses'][-1]:.3f}).",
        f"One training step took {c['train_step_ms']:.0f} ms, one inference forward pass {c['inference_forward_ms']:.0f} ms "
        f"({c['ratio']:.1f}×). The weights file on disk was unchanged: {r['disk_unchanged']}.",
    ]


def write_staircase(r: dict, live: dict) -> list[str]:
    rows = [f"| {p['length']} | {p['uncached_ms']:.1f} | {p['cached_ms']:.1f} |" for p in r["series"]]
    fits = r["fits"]
    return [
        f"Measured on {r['model']} ({r.get('path', '')}): time of one step as the sequence grows.",
        "",
        "| tokens in the sequence | ms without a cache | ms with a KV cache |",
        "|---|---|---|",
        *rows,
        "",
        f"Fits: without a cache {fits['uncached']['formula']}; with one {fits['cached']['formula']}.",
    ]


def write_answer_time(r: dict, live: dict) -> list[str]:
    steps = r["tokens"] - 1
    return [
        f"Measured ({r['how']}): the first token after {r['ttft_ms']:.1f} ms (TTFT), then one token every "
        f"{r['itl_ms']:.1f} ms. A {r['tokens']}-token answer: {r['ttft_ms']:.1f} ms + {steps} × {r['itl_ms']:.1f} ms "
        f"= {r['total_s']:.1f} s, of which the prefill is {percent(r['prefill_share'])}."
    ]


def write_kv_causal(r: dict, live: dict) -> list[str]:
    return [
        f"Measured: K and V of the first {r['tokens']} tokens, computed with {r['tokens']} and with "
        f"{r['tokens'] + 1} tokens, all {r['layers']} layers: max |ΔK| {number(r['max_abs_diff_k'])}, "
        f"|ΔV| {number(r['max_abs_diff_v'])} ({r['ms']:.0f} ms, on the model's weights in this process)."
    ]


def write_kv_staircase(r: dict, live: dict) -> list[str]:
    server = r.get("on") == "server"
    series = r["result"]["series"]
    key = ("n", "fresh_ms", "itl_ms") if server else ("length", "uncached_ms", "cached_ms")
    rows = [f"| {p[key[0]]} | {ms(p[key[1]])} | {ms(p[key[2]])} |" for p in series]
    fresh = "a fresh prompt's time to first token" if server else "the whole sequence, no cache"
    cached = "a streamed token's gap" if server else "one new token with the KV cache"
    return [
        f"Measured {'on the server' if server else 'in this process'}: time of one step as the sequence grows.",
        "",
        f"| tokens in the sequence | ms, {fresh} | ms, {cached} |",
        "|---|---|---|",
        *rows,
    ]


def write_context_cost(r: dict, live: dict) -> list[str]:
    first, last = r["points"][0], r["points"][-1]
    return [
        f"Measured: one cached step took {first['ms']:.2f} ms with {r['shortest']} tokens in the cache and "
        f"{last['ms']:.2f} ms with {r['longest']}: {r['ratio']:.2f}× (fastest of {r['repeats']} runs at each of "
        f"{len(r['points'])} lengths)."
    ]


def write_kv_bytes(r: dict, live: dict) -> list[str]:
    if r.get("measured"):  # in process: the cache's own tensors
        m = r["measured"]
        return [
            f"Measured: the config predicts {m['formula']} = {m['predicted_bytes_per_token']:,.0f} B per token; the "
            f"cache's own tensors after {m['tokens']} tokens hold {m['bytes']:,} B, {m['bytes_per_token']:,.0f} B per token."
        ]
    p, a = r.get("predicted"), r["allocation"]
    said = f"the config predicts {p['formula']} = {p['values_per_token']:,} numbers per token. " if p else ""
    if a.get("bytes_per_token") is None:
        return [f"Measured: {said}The server reports its cache in blocks, not bytes: {a['tokens']:,.0f} tokens."]
    width = f", {r['bytes_per_number']:.2f} bytes per number" if r.get("bytes_per_number") else ""
    widths = "; ".join(f"{d} {b:,} B" for d, b in p["bytes_per_token"].items()) if p else ""
    return [
        f"Measured: {said}"
        + (f"Predicted per token: {widths}. " if widths else "")
        + f"The server allocated {a['memory_bytes']:,.0f} B for {a['tokens']:,.0f} tokens ({a['blocks']:,.0f} blocks × "
        f"{a['block_size']:,.0f}) = {a['bytes_per_token']:,.0f} B per token{width}."
    ]


def write_kv_capacity(r: dict, live: dict) -> list[str]:
    if r.get("in_process"):
        f = r["in_process"]
        return [
            f"Measured in this process: at {r['bytes_per_token']:,.0f} B per token, a {f['context_length']:,}-token "
            f"conversation takes {f['bytes_per_conversation']:,.0f} B, so this machine's free memory "
            f"({f['free_bytes']:,} B) would hold {f['conversations']:.1f} of them (no server connected: no allocation "
            "to read, no fill run)."
        ]
    a = r["allocation"]
    out = [
        f"Measured: the server's cache holds {a['tokens']:,.0f} tokens; ÷ {a['max_model_len']:,} tokens per full "
        f"conversation = {a['conversations']:.2f} conversations at once."
    ]
    fill = (live.get("results") or {}).get("kv_fill")
    if fill:
        out += [
            "",
            f"The learner ran the fill: stopped ({fill['stopped']}) after {fill['seconds']:.1f} s, "
            f"{fill['preemptions']} preemption{'' if fill['preemptions'] == 1 else 's'}, KV cache usage peaked at "
            f"{percent(fill['max_kv_usage'])}, at most {fill['max_waiting']} requests waiting; /health after: "
            f"{'OK' if fill['healthy_after'] else 'not OK'}.",
        ]
    else:
        out += ["", "(The fill that drives it to a preemption was not run in this copy.)"]
    return out


def over(r: dict) -> str:
    """What a Lesson 6 number was computed over: the whole vocabulary, or a server's top logprobs."""
    if r.get("vocab_size"):
        return f"all {r['vocab_size']:,} logits"
    return f"the top {r.get('compared') or len(r['runs'][0]['top'])} logprobs the server returned"


def where(r: dict) -> list[str]:
    """Which engine made a Lesson 6 number, and why, where the server could not."""
    said = [f"Computed on {r['on']}." if r.get("on") else ""]
    said += [f"Why not on the server: {r['why']}." if r.get("why") else "", r.get("note", "")]
    return [" ".join(s for s in said if s)] if any(said) else []


def write_sampling_same_forward(r: dict, live: dict) -> list[str]:
    a, b = r["runs"]
    rows = [
        f"| {cell(quoted(c['token']))} | {percent(c['prob'])} | {percent(d['prob'])} |"
        for c, d in zip(a["top"], b["top"])
    ]
    return [
        f"Measured: the forward pass run once at T {a['temperature']:g} and once at T {b['temperature']:g}; the largest "
        f"difference over {over(r)} was {number(r['max_abs_diff'])}. Seed {r['seed']} drew "
        f"{quoted(a['drawn']['token'])} ({percent(a['drawn']['prob'])}) at T {a['temperature']:g} and "
        f"{quoted(b['drawn']['token'])} ({percent(b['drawn']['prob'])}) at T {b['temperature']:g}.",
        "",
        f"| token | T {a['temperature']:g} | T {b['temperature']:g} |",
        "|---|---|---|",
        *rows,
        *where(r),
    ]


def write_sampling_temperature(r: dict, live: dict) -> list[str]:
    said = ", ".join(
        f"{percent(p['prob']) if p['prob'] is not None else 'below the top returned'} at T {p['temperature']:g}"
        for p in r["points"]
    )
    how = (
        f"softmax(logits / T) over all {r['vocab_size']:,} tokens"
        if r.get("vocab_size")
        else "the server's processed logprobs"
    )
    return [f"Measured: {how} gave {quoted(r['token'])} {said}.", *where(r)]


def write_sampling_outside_top(r: dict, live: dict) -> list[str]:
    return [
        f"Measured: {r['outside']} of {r['draws']} draws at T {r['temperature']:g} (seeds {r['seeds']}) landed outside "
        f"the top {r['k']}, whose mass is {percent(r['top_mass'])} (1 − that = {percent(r['expected_outside'])}). "
        f"The rarest draw: {quoted(r['rarest']['token'])} at {percent(r['rarest']['prob'])}.",
        *where(r),
    ]


def write_sampling_top_p(r: dict, live: dict) -> list[str]:
    rows = [f"| {cell(quoted(c['token']))} | {percent(c['raw'])} | {percent(c['prob'])} |" for c in r["kept"]]
    of = (
        f"{r['vocab_size']:,} tokens"
        if r.get("vocab_size")
        else f"the {r.get('returned')} candidates the server returned"
    )
    kept = f"all {r['eligible']} candidates the server returned" if r.get("at_least") else f"{r['eligible']} of {of}"
    floor = []
    if r.get("at_least"):  # the server's cap hid the rest: a floor, raised by the mass the returned ones hold
        cap = f"its cap is {r['cap']}" if r.get("cap") else f"it returned {r.get('returned')}"
        floor = [
            "",
            f"The server returns only its top {r.get('returned')} logprobs ({cap}), so the count is a floor: "
            f"they hold {percent(r['kept_raw_mass'])} and no token below them has more than the least of them, "
            f"so top_p {r['top_p']:g} kept at least {r.get('floor', r['eligible'])} tokens.",
        ]
    return [
        f"Measured: top_p {r['top_p']:g} kept {kept} (raw mass {percent(r['kept_raw_mass'])}), renormalised:",
        "",
        "| token | raw | after top_p |",
        "|---|---|---|",
        *rows,
        *floor,
        *where(r),
    ]


def write_sampling_batch(r: dict, live: dict) -> list[str]:
    path = "the same greedy path" if r["same_path"] else f"greedy paths parting at token {r['first_divergence'] + 1}"
    if r.get("distinct") is not None:  # on a server: identical requests at once against one alone
        return [
            f"Measured: the prompt greedy alone, then {r['batch']} identical greedy requests at once: "
            f"{r['distinct']} distinct texts, {path} over {r['steps']} tokens; the chosen tokens' logprobs "
            f"differed by at most {number(r['max_abs_diff'])}.",
            *where(r),
        ]
    return [
        f"Measured: the prompt alone and as one row of a padded batch of {r['batch']}: the first step's logits "
        f"differed by at most {number(r['max_abs_diff'])}, {path} over {r['steps']} tokens."
    ]


def as_json(r, live: dict) -> list[str]:
    return ["Measured:", "", "```json", json.dumps(r, ensure_ascii=False, indent=1)[:4000], "```"]


WRITERS: dict[str, Callable[[dict, dict], list[str]]] = {
    "next": write_next,
    "vocab": write_vocab,
    "training": write_training,
    "staircase": write_staircase,
    "answer_time": write_answer_time,
    "kv_causal": write_kv_causal,
    "kv_staircase": write_kv_staircase,
    "context_cost": write_context_cost,
    "kv_bytes": write_kv_bytes,
    "kv_capacity": write_kv_capacity,
    "sampling_same_forward": write_sampling_same_forward,
    "sampling_temperature": write_sampling_temperature,
    "sampling_outside_top": write_sampling_outside_top,
    "sampling_top_p": write_sampling_top_p,
    "sampling_batch": write_sampling_batch,
    **PREFILL_WRITERS,  # Lesson 3's
    **TOKEN_WRITERS,  # Lesson 2's
    **PREFIX_WRITERS,  # Lesson 8's
}

# A choice step the page grades by what was measured, not by the lesson file's answer: the choice
# the measurement makes right (Lesson 6's step 5: bit-identical, or not, on this machine).
MEASURED_ANSWERS: dict[str, Callable[[dict], int]] = {
    "sampling_batch": lambda r: 1 if r["max_abs_diff"] > 0 or (r.get("distinct") or 1) > 1 else 0,
}


# --- small pieces -------------------------------------------------------------------------------
def quoted(text: str) -> str:
    """Model text as inline code, quoted so a leading space or a newline shows; never as Markdown."""
    shown = json.dumps(text, ensure_ascii=False)
    fence = "`" * (max((len(m) for m in re.findall(r"`+", shown)), default=0) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def cell(text: str) -> str:
    """Text inside a Markdown table cell, where a bare | would end the cell."""
    return text.replace("|", "\\|")


def percent(p) -> str:
    if p is None:
        return "–"
    return f"{100 * p:.2g}%" if 0 < p < 0.001 else f"{100 * p:.1f}%"


def number(x) -> str:
    """A measured or guessed number, short: thousands grouped, no trailing zeros."""
    return f"{x:,}" if isinstance(x, int) else f"{x:,.4g}" if abs(x) < 1e6 else f"{x:,.0f}"


def ms(x) -> str:
    return "–" if x is None else f"{x:.1f}"
