"""A lesson as one Markdown document to paste into the learner's own AI assistant.

`render(lesson, live)` is a pure function of the lesson's YAML (any lesson: the words come from
there) and of what was measured live on the connected model:

    live = {
        "model": "SmolLM2-135M-Instruct", "backend": "embedded",
        "results": {"next": NextToken.to_json(), "vocab": {"model", "vocab_size"},
                    "training": {...}, "staircase": {...}},  # keyed by a step's `live`
        "guesses": {"confidence": 40, "loop": 0, "bytes_per_token": 4e4, "staircase": ["line", "flat"]},
        # the learner's, by step id, as each step kind keeps them (the page has them)
        "lab": "http://127.0.0.1:8765",  # the app the try-it links open, when one is running
    }

A step whose `live` result is missing says so (the demo was not run); a result is written by its
live key's writer (`lessons/markdown_live.WRITERS`), with its source line under it, and a result of
a key with no writer as its JSON. `measure` takes what the CLI and the page both can measure in a
second or two (`CHEAP`, by live key, for the lesson's own steps): the next-token distribution for
the lesson's prompt, the tensor checks that read the in-process model's weights, and Lesson 8's
few-prompt prefix-cache steps.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable

from ..cost import kv_causal, prefix_lesson
from ..draws import embedded as draws
from ..draws import server as served
from ..loop import next_token, prompt_ids
from ..measure import provenance as sources
from . import content
from .markdown_live import MEASURED_ANSWERS, WRITERS, as_json, cell, number, percent, quoted  # noqa: F401  (cell, percent: the tests')
from .markdown_tokens import CHEAP as TOKEN_CHEAP


def measure(backend, lesson: dict, k: int = 8, local=None, skip=()) -> dict:
    """The live numbers that cost a forward pass or two, for the lesson's steps that show them
    (`CHEAP`, by live key), with when they were measured. `local` is the model running in this
    process (default: the backend itself), for the steps that read its tensors; `skip` names
    results the caller has already."""
    local = backend if local is None else local
    results = {}
    for key in dict.fromkeys(step["live"] for step in lesson["steps"] if step.get("live")):
        if key in CHEAP and key not in skip:
            result = CHEAP[key](backend, local, lesson, k)
            if result is not None:
                results[key] = result
    return {
        "model": backend.model,
        "backend": backend.name,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "results": results,
    }


def measure_next(backend, local, lesson: dict, k: int) -> dict:
    """Step 3 of Lesson 1: the next-token distribution after the prompt, and the command again."""
    server = getattr(backend, "root", None)  # a server backend's address
    again = f"tokenloop next {shlex.quote(lesson['prompt'])} --top-k {k}" + (f" --url {server}/v1" if server else "")
    return {**next_token(backend, prompt_ids(backend, lesson["prompt"]), k).to_json(), "again": again}


def in_process(measure_it: Callable) -> Callable:
    """A measurement of the local model's tensors: none where no weights folder is in this process."""
    return lambda backend, local, lesson, k: measure_it(local) if local and kv_causal.readable(local) else None


def sampled(measure_it: Callable, on_server: Callable | None = None) -> Callable:
    """Lesson 6's steps: on the connected server where it can answer with a request or two
    (`on_server`), else on the full vocabulary's logits of the model in this process, where there
    is one, labelled as computed beside the server and why (as the page labels them)."""

    def run(backend, local, lesson, k):
        why = None
        if on_server is not None and not backend.in_process:
            try:
                found = on_server(backend, lesson["prompt"])
                return {
                    **found,
                    "on": f"the {backend.caps.kind} server at {backend.root}",
                    "source": sources.server(backend),
                }
            except served.NotAnswered as e:
                why = str(e)
        if local is None or not local.in_process:
            return None
        beside = {} if backend.in_process else {"on": "embedded, beside the server", "why": why}
        return {**measure_it(local, lesson["prompt"]), **beside, "source": sources.embedded(local)}

    return run


def prefixed(key: str) -> Callable:
    """Lesson 8's steps: on the server where the backend is one (the few-prompt steps only: step 1
    takes a minute there, step 5 waits for consent on the page), else all of them in this process."""

    def run(backend, local, lesson, k):
        if not backend.in_process:
            return prefix_lesson.STEPS[key](backend, None, {}) if key in prefix_lesson.CHEAP else None
        return prefix_lesson.STEPS[key](None, local, {}) if local and kv_causal.readable(local) else None

    return run


# The live keys cheap enough to measure for every copy (a second or two on the embedded model).
CHEAP: dict[str, Callable] = {
    "next": measure_next,
    "vocab": lambda backend, local, lesson, k: {"model": backend.model, "vocab_size": backend.vocab_size},
    "kv_causal": in_process(kv_causal.on_backend),
    "kv_bytes": in_process(kv_causal.bytes_on_backend),
    # steps 1, 2 and 4 are a request or two on a server; step 3's 50 draws wait for consent on the page
    "sampling_same_forward": sampled(draws.same_forward, served.same_forward),
    "sampling_temperature": sampled(draws.temperature_prob, served.temperature_prob),
    "sampling_outside_top": sampled(draws.outside_top),
    "sampling_top_p": sampled(draws.top_p_kept, served.top_p_kept),
    **TOKEN_CHEAP,  # Lesson 2's: the tokenizer's counts, on the connected backend
    **{key: prefixed(key) for key in prefix_lesson.STEPS},
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
        out += render_step(step, live, lesson.get("honesty"))
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


def render_step(step: dict, live: dict, honesty: dict | None = None) -> list[str]:
    result = (live.get("results") or {}).get(step.get("live"))
    if step.get("live") in MEASURED_ANSWERS and isinstance(result, dict):  # graded as the page grades it
        step = {**step, "answer": MEASURED_ANSWERS[step["live"]](result)}
    out = [f"## {step['title']}", "", flat(step["question"]), ""]
    if step.get("kind") == "choice":
        out += [
            f"- {'**' + c + '** (the answer)' if i == step['answer'] else c}" for i, c in enumerate(step["choices"])
        ]
        out += [""]
    guessed = guess_line(step, (live.get("guesses") or {}).get(step["id"]))
    out += [guessed, ""] if guessed else []
    out += [flat(step["explain"]), ""]
    kind = step.get("live")
    if kind:
        writer = WRITERS.get(kind, as_json)
        lines = writer(result, live) if result is not None else None
        out += (lines or [f"*(Not measured in this copy: run the {kind} demo on the lesson page first.)*"]) + [""]
        if lines and isinstance(result, dict) and result.get("source"):
            out += [source_line(result["source"], step, honesty or {}), ""]
    return out


def guess_line(step: dict, guess) -> str | None:
    """The learner's guess as its step kind keeps it, marked right or wrong where there is an answer."""
    kind = step.get("kind")
    if kind == "choice" and isinstance(guess, int) and 0 <= guess < len(step["choices"]):
        verdict = "right" if guess == step["answer"] else "wrong"
        return f"The learner guessed: {step['choices'][guess]} ({verdict})."
    if kind == "curve" and isinstance(guess, list):
        picks = [
            f"{curve['label']}: {pick} "
            f"({'right' if pick in content.accepted(curve) else 'wrong, it is ' + curve['answer']})"
            for curve, pick in zip(step["curves"], guess)
        ]
        return f"The learner picked the shapes: {'; '.join(picks)}." if picks else None
    if kind == "estimate" and isinstance(guess, int | float):
        return f"The learner estimated: {number(guess)} {step['unit']}."
    if kind == "probability" and isinstance(guess, int | float):
        return f"The learner guessed: {number(guess)}%."
    return None


def source_line(src: dict, step: dict, honesty: dict) -> str:
    """Where a live number came from, and what its honesty tag means elsewhere (as under the chart)."""
    tag = step.get("honesty")
    line = f"*Source: {src.get('engine')} · {src.get('version')} · model {src.get('model')} · hardware: {src.get('hardware')}"
    line += f" · {src.get('where') or 'in this process'}" + (f" · honesty: {tag.replace('_', ' ')}" if tag else "")
    sentence = step.get("cpu_note") or honesty.get(tag)
    if sentence and src.get("cpu") is not False:
        line += f". {'Measured on a CPU' if src.get('cpu') else 'If this server runs on a CPU'}: {flat(sentence).rstrip('.')}"
    return line + ".*"


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
        here_id = (course_map.get("here") or {}).get("id")
        parts = "; ".join(
            box_line(p) + (" ← this lesson" if (p.get("lesson") or {}).get("id") == here_id else "")
            for p in loop.get("parts") or []
        )
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
    for link in ([source] if source else []) + list(read_next.get("also") or []):
        out += [f"- {link['label']}: [{link['title']}]({link['url']}). {flat(link['why'])}"]
    if notebook:
        out += [
            f"- {notebook['label']}: {notebook['title']}. {flat(notebook['why'])} Open it with `{notebook['command']}`."
        ]
    return out + [""]


# --- small pieces -------------------------------------------------------------------------------
def provenance(live: dict) -> str:
    backend = f" ({live['backend']})" if live.get("backend") else ""
    when = f", {live['when']}" if live.get("when") else ""
    return f"{live.get('model', 'the connected model')}{backend} by tokenloop{when}"


def flat(text: str) -> str:
    """YAML's folded text on one line."""
    return re.sub(r"\s+", " ", str(text)).strip()
