"""The teacher panel. A question first gets the lesson's own passages that answer it best
(`passages.cite`), or, when no passage speaks to it, "that's outside this lesson" and the lesson's
map, and no model at all. Then one of the two things the teacher can do live, if it asks for one
(`action`: the next-token bars for a text, or the training demo). Then the connected model's own
answer, through its own chat template, with the lesson and the cited passages as the system
message, streamed a piece of text at a time:

- by itself when the model is large enough to teach (`LARGE` parameters or more), only when the
  learner asks when it is smaller or its size is unknown (`about`: the size from its config, from
  the embedded model's config when a server runs the same model, or from its name);
- bounded: at most `max_new` tokens and `seconds` of wall clock, and cut where it starts repeating
  itself (`Repetition`); each cut is said, as a `cut` event, with how much of the text to keep.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

from ..errors import ModelError, UsageError
from ..lessons import content, passages
from ..loop import generate
from ..model import estimates
from ..model.config import Shape
from ..records import Done
from ..sampling import Sampler

# A little randomness keeps a small model from repeating one sentence; top-p cuts the odd tail.
TEACHER_SAMPLER = Sampler(temperature=0.4, top_p=0.9)

CITED = 3  # passages shown per question, and sent to the model as its grounding
LARGE = 7_000_000_000  # parameters from which a model answers by itself (7B: the smallest that teaches passably)
SECONDS = 45.0  # the longest an answer may stream (a 135M model on a busy CPU writes ~96 tokens in 10-30 s)
REPEAT_WORDS = 6  # an answer that writes the same 6 words twice is cut where the repeat began

# "what comes after <text>?", "what comes next after <text>", "the next token after <text>"
NEXT = re.compile(
    r"\b(?:comes?|follows?|next\s+(?:token|word))\s+(?:next\s+)?after\s*:?\s+(?P<text>.+?)\s*\??\s*$",
    re.IGNORECASE | re.DOTALL,
)
TRAINING = re.compile(r"\b(?:show|run|demo|see|watch)\b.{0,40}\btrain", re.IGNORECASE | re.DOTALL)
QUOTES = "\"'“”‘’«»`"
# "SmolLM2-135M-Instruct" -> 135e6, "Llama-3.1-8B" -> 8e9, "Mixtral-8x7B" -> 56e9
SIZE_IN_NAME = re.compile(r"(?<![a-z0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)([mb])(?![a-z0-9])", re.IGNORECASE)
CUT = {
    "tokens": "Cut at {max_new} tokens, the most an answer may take.",
    "time": "Cut after {seconds:g} s, the longest an answer may take.",
    "repetition": "Cut here: the model began repeating itself.",
}


def action(question: str, lesson: dict | None = None) -> dict | None:
    """The live thing a question asks the teacher to do: {"kind": "next", "text": ...} for the
    next-token bars of a text, {"kind": "training"} for the training demo (only in a lesson that
    offers it: its teacher's actions name it), or None."""
    found = NEXT.search(question)
    if found:
        text = found.group("text").strip().strip(QUOTES).rstrip("?").strip(QUOTES)
        if text.strip():
            return {"kind": "next", "text": text}
    offered = lesson is None or "training" in lesson["teacher"].get("actions", {})
    if offered and TRAINING.search(question):
        return {"kind": "training"}
    return None


def topic(question: str, act: dict | None) -> str:
    """What the question is about: not the words of the text whose next token it asks for."""
    return question.replace(act["text"], " ") if act and "text" in act else question


def outside(lesson: dict, question: str) -> dict | None:
    """For a question the lesson does not speak to (and that asks for no action): our words, the
    lesson's map (its steps' titles with their anchors on the page) and the other lessons that do
    speak to it (`elsewhere`, with their links). None for a lesson question."""
    if action(question, lesson) or passages.relevance(passages.passages(lesson), question) >= passages.FLOOR:
        return None
    steps = [{"step": s["id"], "title": s["title"], "anchor": f"#step-{s['id']}"} for s in lesson["steps"]]
    others = (content.load(name) for name in content.available() if name != lesson["id"])
    elsewhere = [
        {"lesson": other["id"], "title": other["title"], "href": f"/?lesson={other['id']}"}
        for other in others
        if passages.relevance(passages.passages(other), question) >= passages.FLOOR
    ]
    return {"text": lesson["teacher"]["outside"].strip(), "map": steps, "elsewhere": elsewhere}


def cite(lesson: dict, question: str) -> dict:
    """What the page shows before the model speaks: the lesson's best passages and the action, or,
    for a question outside the lesson, no passage and the lesson's map."""
    act = action(question, lesson)
    away = outside(lesson, question)
    ranked = [] if away else passages.cite(passages.passages(lesson), topic(question, act), CITED)
    return {
        "passages": [{**p.to_json(), "score": round(score, 3)} for p, score in ranked],
        "action": act,
        "outside": away,
    }


def messages(lesson: dict, question: str, history: list[dict]) -> list[dict]:
    """System message from the lesson and the passages cited for this question (the same the page
    shows), then the earlier turns, then the new question."""
    ranked = passages.cite(passages.passages(lesson), topic(question, action(question, lesson)), CITED)
    system = lesson["teacher"]["system"].strip()
    if ranked:
        system += "\n\n" + lesson["teacher"]["grounding"].strip() + "\n" + "\n".join(f"- {p.text}" for p, _ in ranked)
    return [
        {"role": "system", "content": system},
        *history,
        {"role": "user", "content": question},
    ]


def parameters_in_name(name: str) -> int | None:
    """The size a model's name states ("…-135M-…", "…-8B", "…-8x7B"), or None."""
    found = SIZE_IN_NAME.search(name.rsplit("/", 1)[-1])
    if not found:
        return None
    experts, number, unit = found.groups()
    return round(float(number) * (1e6 if unit.lower() == "m" else 1e9) * int(experts or 1))


def config_parameters(backend) -> int | None:
    config = getattr(backend, "config", None)
    try:
        return estimates.parameters(Shape.from_config(config)) if config is not None else None
    except (ModelError, KeyError, TypeError, AttributeError):  # a config this reader doesn't know
        return None


def same_model(a: str, b: str) -> bool:
    """A server's name for a model ("HuggingFaceTB/SmolLM2-135M-Instruct", a folder) and ours."""
    return a.rstrip("/").rsplit("/", 1)[-1].lower() == b.rstrip("/").rsplit("/", 1)[-1].lower()


def about(chatty, beside=None) -> dict | None:
    """The teacher's model and its size: from its config; for a server, from the embedded model's
    config when the server runs the same model, else from the name the server gives it. `small`
    (under `LARGE`, or of unknown size) decides that its answer comes only when asked."""
    if chatty is None:
        return None
    count, source = config_parameters(chatty), "its config"
    if count is None and beside is not None and beside is not chatty and same_model(chatty.model, beside.model):
        count, source = config_parameters(beside), f"the config of {beside.model}, the same model in this process"
    if count is None:
        count, source = parameters_in_name(chatty.model), "its name"
    if count is None:
        source = None
    return {
        "model": chatty.model,
        "parameters": count,
        "size": size_words(count),
        "from": source,
        "small": count is None or count < LARGE,
        "large_from": LARGE,
        "large_size": size_words(LARGE),
    }


def size_words(count: int | None) -> str:
    if count is None:
        return "an unknown number of parameters"
    if count >= 1e9:
        return f"{count / 1e9:.3g} billion parameters"
    if count >= 1e6:
        return f"{count / 1e6:.3g} million parameters"
    return f"{count:,} parameters"


@dataclass(frozen=True)
class Ended:
    """How a model's text ended by itself: "end" (an end token) or "tokens" (max_new reached)."""

    why: str


def answer(
    backend,
    lesson: dict,
    question: str,
    history: list[dict],
    max_new: int,
    seconds: float = SECONDS,
    clock: Callable[[], float] = time.monotonic,
    gone: threading.Event | None = None,
) -> Iterator[tuple[str, dict]]:
    """The teacher's answer as (event, data) pairs: which model speaks, its text a piece at a time,
    a `cut` if it was cut, then done. A question outside the lesson gets `outside` and no model.
    What can fail before the first byte fails here, so it is an HTTP error, not an event. The model
    stops within one piece of a long conversation's prompt once `seconds` are up or the page has
    gone (`gone`, set by the stream), not after the whole prompt."""
    away = outside(lesson, question)
    if away:
        return iter([("outside", away), ("done", {"done": True, "why": "outside"})])
    start, gone = clock(), gone or threading.Event()
    going = lambda: not gone.is_set() and clock() - start <= seconds  # noqa: E731
    text = prepare(backend, messages(lesson, question, history), max_new, going)
    return itertools.chain(
        [("model", {"model": backend.model, "backend": backend.name})],
        bounded(text, max_new, seconds, clock),
    )


def bounded(
    text: Generator[str | Ended, None, None], max_new: int, seconds: float, clock
) -> Iterator[tuple[str, dict]]:
    """The pieces as `text` events, stopped at `seconds` of wall clock or at a repetition; a `cut`
    event says why and how many characters of the answer to keep; `done` ends it."""
    start, sent, repeats, why = clock(), "", Repetition(), "end"
    try:
        for piece in text:
            if isinstance(piece, Ended):
                why = piece.why
                break
            sent += piece
            yield "text", {"text": piece}
            repeated = repeats.at(sent)
            if repeated is not None:
                why, sent = "repetition", sent[:repeated]
                break
            if clock() - start > seconds:
                why = "time"
                break
    finally:
        text.close()  # stops the model now: the loop's generator, or the server's stream
    if why != "end":
        yield "cut", {"why": why, "keep": len(sent), "text": CUT[why].format(max_new=max_new, seconds=seconds)}
    yield "done", {"done": True, "why": why, "seconds": round(clock() - start, 3)}


WORDS = re.compile(r"[\w']+", re.UNICODE)


class Repetition:
    """Finds where a text starts repeating itself: the first place where the last `n` words (case
    and punctuation aside) already appeared earlier. Only whole words count: a word still being
    written (no space or punctuation after it yet) waits for the next piece."""

    def __init__(self, n: int = REPEAT_WORDS):
        self.n = n

    def at(self, text: str) -> int | None:
        """The character offset where the repeat begins (the text to keep ends there), or None."""
        words = list(WORDS.finditer(text))
        if words and words[-1].end() == len(text):
            words.pop()  # unfinished
        seen: set[tuple[str, ...]] = set()
        keys = [w.group().lower() for w in words]
        for i in range(len(keys) - self.n + 1):
            gram = tuple(keys[i : i + self.n])
            if gram in seen:
                return words[i].start()
            seen.add(gram)
        return None


def prepare(backend, conversation: list[dict], max_new: int, going=None) -> Iterator[str | Ended]:
    """Check everything that can fail before the stream starts, then hand back the text pieces."""
    if not backend.in_process:
        return server_pieces(backend, conversation, max_new)
    if not backend.can_chat:
        raise UsageError(f"{backend.model} has no chat template, so it cannot answer as a teacher")
    ids = backend.encode(backend.chat_text(conversation))
    if len(ids) + max_new > backend.context_length:
        raise UsageError("the conversation is too long for the model's context: reload the page to start a fresh one")
    return pieces(backend, ids, max_new, going)


def pieces(backend, ids: list[int], max_new: int, going=None) -> Iterator[str | Ended]:
    """The answer as it grows, then how it ended. Decoding everything so far and sending the new
    part keeps a character split across two tokens whole."""
    made: list[int] = []
    sent = ""
    for record in generate(backend, ids, max_new, TEACHER_SAMPLER, cache=True, show=1, go_on=going):
        if isinstance(record, Done):
            yield Ended({"max_new": "tokens", "context": "tokens", "stopped": "time"}.get(record.stop, "end"))
            return
        if record.chosen.id in backend.eos_ids:
            yield Ended("end")
            return
        made.append(record.chosen.id)
        text = backend.decode(made)
        if text.endswith("\ufffd"):  # half a character: wait for the rest
            continue
        if text[len(sent) :]:
            yield text[len(sent) :]
        sent = text


def chunk_text(chunk) -> tuple[str, str | None]:
    """One streamed chat chunk's new text ("" where it has none: a role-only first chunk, a
    `content: null`, a usage chunk) and its finish_reason, whatever shape the server sends."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    delta = choice.get("delta")
    piece = delta.get("content") if isinstance(delta, dict) else None
    finish = choice.get("finish_reason")
    return (piece if isinstance(piece, str) else ""), (finish if isinstance(finish, str) else None)


def server_pieces(backend, conversation: list[dict], max_new: int) -> Iterator[str | Ended]:
    """The server applies its own chat template: /v1/chat/completions, streamed."""
    body = {
        "model": backend.model,
        "messages": conversation,
        "max_tokens": max_new,
        "stream": True,
        "temperature": TEACHER_SAMPLER.temperature,
        "top_p": TEACHER_SAMPLER.top_p,
    }
    ended = Ended("end")
    with backend.client.events("/v1/chat/completions", body) as chunks:
        for chunk in chunks:
            piece, finish = chunk_text(chunk)
            if piece:
                yield piece
            if finish == "length":
                ended = Ended("tokens")
    yield ended
