"""Lesson 8's live numbers as Markdown, by the step's `live` key (merged into
`markdown_live.WRITERS`): each writer takes the result as its route returned it, the same dict the
page draws (`web/live_prefix.py`)."""

from __future__ import annotations

from collections.abc import Callable


def _ms(x) -> str:
    return "–" if x is None else f"{x:.1f}"


def _where(r: dict) -> str:
    return "on the server" if r.get("on") == "server" else "in this process (a prefix cache kept in blocks)"


def write_growth(r: dict, live: dict) -> list[str]:
    jumps = ", ".join(f"{j['blocks']} at {j['tokens']}" for j in r["jumps"][:12]) or "none seen"
    if r.get("on") != "server":  # no allocator to read here: the paging rule on the measured length
        return [
            f"Counted in this process: one request of {r['prompt_tokens']} prompt tokens writing {r['generated']} more. "
            "This process keeps its keys and values in one growing tensor per layer, not in pages, so the blocks are "
            f"counted from its measured length as a paged cache would hand them out (⌈length ÷ {r['block_size']}⌉): "
            f"{r['first_blocks']} at first, {r['last_blocks']} at the end (blocks at tokens so far: {jumps})."
        ]
    return [
        f"Measured {_where(r)}: one request of {r['prompt_tokens']} prompt tokens writing {r['generated']} more, "
        f"blocks of {r['block_size']} tokens. It held {r['first_blocks']} block(s) at its first reading and "
        f"{r['last_blocks']} at its last; one more block at a time (blocks held at tokens written so far: {jumps})."
    ]


def write_repeat(r: dict, live: dict) -> list[str]:
    a, b = r["first"], r["second"]
    counters = (
        f" The prefix-cache counters moved by {r['delta_queries']:,.0f} tokens looked up and {r['delta_hits']:,.0f} hit"
        if r.get("delta_hits") is not None
        else ""
    )
    return [
        f"Measured {_where(r)}: the same {a['prompt_tokens']}-token prompt twice. Time to first token {_ms(a['ms'])} ms, "
        f"then {_ms(b['ms'])} ms ({r['speedup']:.1f}× faster); the second had {b['cached_tokens']} of its "
        f"{b['prompt_tokens']} tokens from the cache (blocks of {r['block_size']}).{counters}."
    ]


def write_two_blocks(r: dict, live: dict) -> list[str]:
    rows = [f"| {x['tokens']} | {x['cached_tokens']} | {x['predicted']} |" for x in r["rows"]]
    return [
        f"Measured {_where(r)}, blocks of {r['block_size']} tokens; each prompt sent twice:",
        "",
        "| prompt tokens | cached on the second send | whole blocks of n − 1 |",
        "|---|---|---|",
        *rows,
    ]


def write_one_word(r: dict, live: dict) -> list[str]:
    rows = [
        f"| {x['change']} (token {x['position'] + 1}) | {x['cached_tokens']} of {x['prompt_tokens']} | {_ms(x['ms'])} |"
        for x in r["rows"]
    ]
    return [
        f"Measured {_where(r)}: a {r['tokens']}-token prompt cached ({_ms(r['base']['ms'])} ms to first token), "
        f"then sent with one token changed; blocks of {r['block_size']}:",
        "",
        "| token changed | cached | ms to first token |",
        "|---|---|---|",
        *rows,
    ]


def write_survival(r: dict, live: dict) -> list[str]:
    done = r.get("rounds_done", r.get("rounds"))
    if not isinstance(done, list) or (done and not isinstance(done[0], dict)):
        return ["Not measured: step 5 on a server waits for your consent on the page."]
    size = r.get("capacity_tokens") or r.get("tokens")
    rows = [
        f"| {x['fraction']:g}× ({x['other_requests']} prompts, {x['other_tokens']:,} tokens) | {x['cached_tokens']} |"
        for x in done
    ]
    return [
        f"Measured {_where(r)}: a {r['prompt_tokens']}-token prompt ({r['most']} tokens reusable) in a cache of "
        f"{int(size or 0):,} tokens, re-sent after other traffic of each size:",
        "",
        "| other traffic since it was last sent | its tokens still cached |",
        "|---|---|",
        *rows,
        *(["", f"Stopped: {r['stopped']}."] if r.get("stopped") else []),
    ]


def write_side_channel(r: dict, live: dict) -> list[str]:
    s, t = r["shared"], r["salted"]
    return [
        f"Measured {_where(r)}, {r['tokens']}-token prompts (a security lesson). Without salts: probing the "
        f"victim's prompt took {_ms(s['probe_same']['ms'])} ms ({s['probe_same']['cached_tokens']} tokens cached), "
        f"another prompt {_ms(s['probe_other']['ms'])} ms ({s['probe_other']['cached_tokens']} cached). With a salt per "
        f"tenant: the probe took {_ms(t['probe_same']['ms'])} ms ({t['probe_same']['cached_tokens']} cached); the "
        f"victim's own re-send {_ms(t['owner_again']['ms'])} ms ({t['owner_again']['cached_tokens']} cached)."
    ]


WRITERS: dict[str, Callable[[dict, dict], list[str]]] = {
    "prefix_growth": write_growth,
    "prefix_repeat": write_repeat,
    "prefix_two_blocks": write_two_blocks,
    "prefix_one_word": write_one_word,
    "prefix_survival": write_survival,
    "prefix_side_channel": write_side_channel,
}
