"""Lesson 8's steps (pages and prefix caching), each on the connected server or in this process:
what the page's routes (`web/live_prefix.py`) and `tokenloop lesson --markdown` run.

With a server (vLLM) every step runs there (`prefix_server.py`): its blocks, its `cached_tokens`,
its prefix counters. Without one, the same steps run in this process on a prefix cache kept in
blocks of 16 tokens (`prefix_blocks.py`), on the embedded model's from-scratch forward; step 5's
small cache there is 17 blocks, as on the lesson's small-cache test server. Each answer names
where it ran (`on`) and its `source`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UsageError
from ..measure import provenance
from . import kv_causal, prefix_blocks, prefix_server

DEFAULTS = {
    "prefix_len": 940,  # steps 2, 4, 5 and 6 on a server: COURSE.md's prompt
    "prefix_len_local": 240,  # the same in process, in blocks of 16
    "grow_tokens": 1000,  # step 1 on a server
    "grow_tokens_local": 192,
    "survival_len_local": 120,  # step 5 in process: 7 of 17 blocks, as 940 tokens are of the small server's 17 × 128
    "survival_blocks_local": 17,
}
BLOCK = prefix_blocks.BLOCK


def knob(demo: dict, name: str):
    return demo.get(name, DEFAULTS[name])


def length(server, demo: dict) -> int:
    """The long prompt on a server: COURSE.md's 940 tokens, within its context."""
    return min(knob(demo, "prefix_len"), server.context_length - 16)


def in_process(local, run: Callable) -> dict:
    """`run(model, encode)` on the from-scratch copy of the model in this process."""
    if local is None or not local.in_process or not kv_causal.readable(local):
        raise UsageError(
            "this step runs on the embedded model's weights in this process (the transformers or torch engine)"
        )
    found = run(kv_causal.scratch_model(local.model_dir), local.encode)
    return {**found, "on": "embedded", "source": provenance.embedded(local)}


def on_server(found: dict, server) -> dict:
    return {**found, "on": "server", "source": provenance.server(server)}


def growth(server, local, demo: dict, on_progress=None) -> dict:
    """Step 1: blocks handed out as one request grows."""
    if server is not None:
        return on_server(prefix_server.growth(server, knob(demo, "grow_tokens"), on_progress), server)
    tokens = knob(demo, "grow_tokens_local")

    def run(model, encode):
        pool = local.context_length // BLOCK  # a cache sized for one full conversation, reserved up front
        return prefix_blocks.grow(model, prefix_blocks.prompt(encode, 8), tokens, BLOCK, pool, on_progress)

    return in_process(local, run)


def repeat(server, local, demo: dict, on_progress=None) -> dict:
    """Step 2: the same prompt twice."""
    if server is not None:
        return on_server(prefix_server.repeat(server, length(server, demo)), server)
    n = knob(demo, "prefix_len_local")
    return in_process(local, lambda model, encode: prefix_blocks.repeat(model, encode, n, BLOCK))


def two_blocks(server, local, demo: dict, on_progress=None) -> dict:
    """Step 3: exactly two blocks, and two blocks and one token."""
    if server is not None:
        return on_server(prefix_server.two_blocks(server), server)
    return in_process(local, lambda model, encode: prefix_blocks.two_blocks(model, encode, BLOCK))


def one_word(server, local, demo: dict, on_progress=None) -> dict:
    """Step 4: the first token changed, or one near the end."""
    if server is not None:
        return on_server(prefix_server.one_word(server, length(server, demo)), server)
    n = knob(demo, "prefix_len_local")
    return in_process(local, lambda model, encode: prefix_blocks.one_word(model, encode, n, BLOCK))


def survival_plan(server, demo: dict) -> dict:
    """Step 5's plan on a server (stated, then consented to)."""
    return prefix_server.survival_plan(server, length(server, demo))


def survival(server, local, demo: dict, on_progress=None) -> dict:
    """Step 5: the prompt re-sent after growing amounts of other traffic."""
    if server is not None:
        return on_server(prefix_server.survival(server, length(server, demo), on_progress=on_progress), server)
    n, blocks = knob(demo, "survival_len_local"), knob(demo, "survival_blocks_local")
    return in_process(local, lambda model, encode: prefix_blocks.survival(model, encode, n, BLOCK, blocks))


def side_channel(server, local, demo: dict, on_progress=None) -> dict:
    """Step 6: another tenant's probe, without and with a salt per tenant."""
    if server is not None:
        return on_server(prefix_server.side_channel(server, length(server, demo)), server)
    n = knob(demo, "prefix_len_local")
    return in_process(local, lambda model, encode: prefix_blocks.side_channel(model, encode, n, BLOCK))


# By the lesson's live keys.
STEPS: dict[str, Callable] = {
    "prefix_growth": growth,
    "prefix_repeat": repeat,
    "prefix_two_blocks": two_blocks,
    "prefix_one_word": one_word,
    "prefix_survival": survival,
    "prefix_side_channel": side_channel,
}
# Cheap enough for every Markdown copy: a few prompts (step 5 on a server needs consent on the page).
CHEAP = ("prefix_repeat", "prefix_two_blocks", "prefix_one_word", "prefix_side_channel")
