"""Lesson 2's live numbers as Markdown, by the step's `live` key (merged into
`markdown_live.WRITERS`), from the same dicts the page draws (`cost/tokens.py` via
`web/live_tokens.py`); and `CHEAP`, the measurements `markdown.measure` runs for a CLI copy (all
five take a moment: a tokenizer call or one forward pass; the limit step on a server waits for
the capped answer)."""

from __future__ import annotations

import json
from collections.abc import Callable

from ..cost import tokens
from ..errors import TokenloopError
from ..measure import provenance


def _q(text: str) -> str:
    return "`" + json.dumps(text, ensure_ascii=False) + "`"


def _on(r: dict) -> str:
    return f" ({r['on']})" if r.get("on") else ""


def write_pieces(r: dict, live: dict) -> list[str]:
    pieces = " · ".join(f"{_q(t['piece'])} {t['id']}" for t in r["tokens"])
    return [f"Measured{_on(r)}: {r['words']} words, {r['chars']} characters, **{r['count']} tokens**: {pieces}."]


def write_chat(r: dict, live: dict) -> list[str]:
    added = "".join(t["piece"] for t in r["tokens"] if not t["yours"])
    return [
        f"Measured{_on(r)}: your {r['own']} tokens became **{r['count']}** as one chat message: the template added "
        f"{r['added']}. Cross-check, {r['usage_how']}: {r['usage_prompt_tokens']}.",
        "",
        f"The template's pieces, joined: {_q(added)}",
    ]


def write_per_kilochar(r: dict, live: dict) -> list[str]:
    rows = [f"| {x['kind']} | {x['chars']} | {x['tokens']} | {x['per_1000']:.0f} |" for x in r["rows"]]
    return [
        f"Measured{_on(r)}:",
        "",
        "| text | characters | tokens | tokens per 1,000 characters |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Dearest: {r['dearest']}, {r['spread']:.1f}× the cheapest ({r['cheapest']}).",
    ]


def _said(x: dict) -> str:
    if x["status"] == 200:
        return f"HTTP 200, {x['completion_tokens']} tokens, finish_reason `{x['finish_reason']}`"
    return f"HTTP {x['status']}: {_q(x['error'])}"


def write_limits(r: dict, live: dict) -> list[str]:
    near, over = r["near"], r["over"]
    return [
        f"Measured{_on(r)}, context {r['context']:,} tokens:",
        "",
        f"- {near['prompt_tokens']:,}-token prompt, max_tokens {near['max_tokens']}: {_said(near)}",
        f"- {over['prompt_tokens']:,}-token prompt, max_tokens {over['max_tokens']}: {_said(over)}",
    ]


def _rank(rank) -> str:
    return "(first: nothing before it)" if rank is None else f"rank {rank:,}"


def write_surprise(r: dict, live: dict) -> list[str]:
    ranks = " · ".join(f"{_q(t['piece'])} {_rank(t['rank'])}" for t in r["tokens"])
    w = r["most_surprising"]
    return [
        f"Measured{_on(r)}: {r['top1']} of {r['scored']} pieces after the first were the model's top guess "
        f"({100 * r['top1_share']:.1f}%). Each piece's rank given the ones before it: {ranks}. The most surprising: "
        f"{_q(w['piece'])} at rank {w['rank']:,} (logprob {w['logprob']:.1f}).",
    ]


WRITERS: dict[str, Callable[[dict, dict], list[str]]] = {
    "token_pieces": write_pieces,
    "chat_template": write_chat,
    "tokens_per_kchar": write_per_kilochar,
    "context_limits": write_limits,
    "prompt_surprise": write_surprise,
}


def _where(backend) -> dict:
    return {
        "on": "the embedded model" if backend.in_process else f"the {backend.caps.kind} server at {backend.root}",
        "source": provenance.of(backend),
    }


def _surprise(backend, local, lesson, k):
    """Step 5: the server's prompt scores, or the model in this process where the server has none."""
    scorer = backend if backend.in_process or backend.dialect.prompt_scores else local
    return (
        None
        if scorer is None or not (scorer.in_process or scorer.dialect.prompt_scores)
        else {**tokens.surprise(scorer, lesson["prompt"]), **_where(scorer)}
    )


def _samples(lesson: dict) -> dict:
    return next(s["samples"] for s in lesson["steps"] if s.get("live") == "tokens_per_kchar")


def _or_none(measure_it: Callable) -> Callable:
    """A step this backend can't answer (no chat template, no tokenizer) is left out of the copy,
    which then says it was not measured, rather than failing the whole document."""

    def run(backend, local, lesson, k):
        try:
            return measure_it(backend, local, lesson, k)
        except TokenloopError:
            return None

    return run


def _on_backend(count: Callable) -> Callable:
    """A count on the connected backend, with where it was made."""
    return _or_none(lambda backend, local, lesson, k: {**count(backend, lesson), **_where(backend)})


CHEAP: dict[str, Callable] = {
    "token_pieces": _on_backend(lambda backend, lesson: tokens.pieces(backend, lesson["prompt"])),
    "chat_template": _on_backend(lambda backend, lesson: tokens.chat_share(backend, lesson["prompt"])),
    "tokens_per_kchar": _on_backend(lambda backend, lesson: tokens.per_kilochar(backend, _samples(lesson))),
    "context_limits": _on_backend(lambda backend, lesson: tokens.limits(backend)),
    "prompt_surprise": _or_none(_surprise),
}
