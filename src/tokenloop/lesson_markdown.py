"""A lesson as one Markdown document to paste into the learner's own AI assistant.

`render(lesson, live)` is a pure function of the lesson's YAML (any lesson: the words come from
there) and of what was measured live on the connected model:

    live = {
        "model": "SmolLM2-135M-Instruct", "backend": "embedded",
        "results": {"next": NextToken.to_json(), "vocab": {"model", "vocab_size"},
                    "training": {...}, "staircase": {...}},  # keyed by a step's `live`
        "guesses": {"confidence": 40, "loop": 0},  # the learner's, by step id (the page has them)
        "lab": "http://127.0.0.1:8765",  # the app the try-it links open, when one is running
    }

A step whose `live` result is missing says so (the demo was not run); a result of a kind this
module has no words for is written as its JSON. `measure` takes what the CLI and the page both
can measure at once: the connected model's next-token distribution for the lesson's prompt.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable

from .loop import next_token, prompt_ids


def measure(backend, lesson: dict, k: int = 8) -> dict:
    """The live numbers that cost one forward pass: the model, and step 3's distribution, with
    when it was measured and the command that measures it again."""
    result = next_token(backend, prompt_ids(backend, lesson["prompt"]), k).to_json()
    vocab = {"model": backend.model, "vocab_size": backend.vocab_size}
    server = getattr(backend, "root", None)  # a server backend's address
    again = f"tokenloop next {shlex.quote(lesson['prompt'])} --top-k {k}" + (f" --url {server}/v1" if server else "")
    return {
        "model": backend.model,
        "backend": backend.name,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "results": {"next": {**result, "again": again}, "vocab": vocab},
    }


def render(lesson: dict, live: dict) -> str:
    """The whole lesson, its live numbers and what to ask, as Markdown."""
    out = [f"# {lesson['title']}", ""]
    copy = lesson.get("for_your_ai") or {}
    if copy.get("instruction"):
        out += ["> **For the assistant.** " + flat(copy["instruction"]), ""]
    out += [f"*Measured live on {provenance(live)}.*", ""]
    for key in ("subtitle", "win", "how_to"):
        if lesson.get(key):
            out += [flat(lesson[key]), ""]
    if lesson.get("picture"):
        out += [f"## {lesson['picture']['title']}", "", flat(lesson["picture"]["text"]), ""]
    out += [f"Prompt used in the lesson: {quoted(lesson['prompt'])}", ""]
    for step in lesson["steps"]:
        out += render_step(step, live)
    out += render_recall(lesson)
    out += render_map(lesson.get("course_map"))
    out += render_try_it(lesson.get("try_it"), live.get("lab"))
    if lesson.get("quiz"):
        out += ["## Check yourself", ""]
        for i, q in enumerate(lesson["quiz"], 1):
            choices = "; ".join(f"({chr(97 + j)}) {c}" for j, c in enumerate(q["choices"]))
            out += [f"{i}. {q['question']} {choices}. Answer: ({chr(97 + q['answer'])})."]
        out += [""]
    ask = lesson.get("ask_your_ai")
    if ask:
        out += ["## Three prompts, in order", "", flat(ask["intro"]), ""]
        out += [f"- **{p['title']}.** {flat(p['text'])}" for p in ask["prompts"]] + [""]
    out += render_read_next(lesson.get("read_next"))
    return "\n".join(out).rstrip() + "\n"


def render_step(step: dict, live: dict) -> list[str]:
    out = [f"## {step['title']}", "", flat(step["question"]), ""]
    guess = (live.get("guesses") or {}).get(step["id"])
    if step.get("kind") == "choice":
        out += [
            f"- {'**' + c + '** (the answer)' if i == step['answer'] else c}" for i, c in enumerate(step["choices"])
        ]
        out += [""]
        if isinstance(guess, int) and 0 <= guess < len(step["choices"]):
            verdict = "right" if guess == step["answer"] else "wrong"
            out += [f"The learner guessed: {step['choices'][guess]} ({verdict}).", ""]
    elif guess is not None:
        out += [f"The learner guessed: {guess}%.", ""]
    out += [flat(step["explain"]), ""]
    kind = step.get("live")
    if kind:
        result = (live.get("results") or {}).get(kind)
        writer = WRITERS.get(kind, as_json)
        lines = writer(result, live) if result is not None else None
        out += (lines or [f"*(Not measured in this copy: run the {kind} demo on the lesson page first.)*"]) + [""]
    return out


def render_recall(lesson: dict) -> list[str]:
    out = ["## Recall", ""] if lesson.get("recall") else []
    for card in lesson.get("recall") or []:
        out += [f"- **{card['prompt']}** {flat(card['answer'])}"]
    col = lesson.get("colleague")
    if col:
        out += ["", f"- **Explain it to a colleague: {col['starter']}** {flat(col['model_answer'])}"]
    return out + [""] if out else out


def render_map(course_map: dict | None) -> list[str]:
    """The request pipeline as a numbered path, with the loop and what runs beside it."""
    if not course_map:
        return []
    out = [f"## {course_map['title']}", "", flat(course_map["note"]), ""]
    boxes = list(course_map.get("pipeline") or [])
    loop = course_map.get("loop")
    n = 0
    for n, box in enumerate(boxes, 1):
        out += [f"{n}. {box_line(box)}"]
    if loop:
        parts = "; ".join(box_line(p) for p in loop.get("parts") or [])
        here = f" **{course_map['you_are_here']}.**" if course_map.get("you_are_here") else ""
        out += [f"{n + 1}. **{loop['name']}**: {loop['what']} ({parts}). {loop['back']}.{here}"]
        n += 1
    for i, box in enumerate(course_map.get("after") or [], n + 1):
        out += [f"{i}. {box_line(box)}"]
    beside = course_map.get("beside") or []
    if beside:
        label = course_map.get("beside_label") or "Beside the loop:"
        out += ["", f"{label} " + "; ".join(box_line(b) for b in beside) + "."]
    return out + [""]


def box_line(box: dict) -> str:
    name = f"**{box['name']}**: " if box.get("name") else ""
    lesson = f" (Lesson {box['lesson']['number']})" if box.get("lesson") else ""
    return f"{name}{box['what']}{lesson}"


def render_try_it(try_it: dict | None, lab: str | None) -> list[str]:
    if not try_it:
        return []
    out = [f"## {try_it['title']}", "", flat(try_it["intro"]), ""]
    for i, item in enumerate(try_it["items"], 1):
        settings = ", ".join(f"{k} {json.dumps(v)}" for k, v in item["lab"].items())
        link = f" [Open it in the lab]({lab.rstrip('/')}{item['href']})." if lab and item.get("href") else ""
        out += [f"{i}. **{item['title']}** ({settings}). Look for: {flat(item['look_for'])}{link}"]
    if not lab:
        out += ["", "(Start the lab with `tokenloop lesson`; it opens at http://127.0.0.1:8765/lab.)"]
    return out + [""]


def render_read_next(read_next: dict | None) -> list[str]:
    if not read_next:
        return []
    out = [f"## {read_next['title']}", ""]
    source, notebook = read_next.get("source"), read_next.get("notebook")
    if source:
        out += [f"- {source['label']}: [{source['title']}]({source['url']}). {flat(source['why'])}"]
    if notebook:
        out += [
            f"- {notebook['label']}: {notebook['title']}. {flat(notebook['why'])} Open it with `{notebook['command']}`."
        ]
    return out + [""]


# --- the live numbers, by the kind of a step's `live` ----------------------------------------------
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


def as_json(r, live: dict) -> list[str]:
    return ["Measured:", "", "```json", json.dumps(r, ensure_ascii=False, indent=1)[:4000], "```"]


WRITERS: dict[str, Callable[[dict, dict], list[str]]] = {
    "next": write_next,
    "vocab": write_vocab,
    "training": write_training,
    "staircase": write_staircase,
}


# --- small pieces -------------------------------------------------------------------------------
def provenance(live: dict) -> str:
    backend = f" ({live['backend']})" if live.get("backend") else ""
    when = f", {live['when']}" if live.get("when") else ""
    return f"{live.get('model', 'the connected model')}{backend} by tokenloop{when}"


def flat(text: str) -> str:
    """YAML's folded text on one line."""
    return re.sub(r"\s+", " ", str(text)).strip()


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
