"""The teacher panel. A question first gets the lesson's own passages that answer it best
(`passages.rank`), then one of the two things the teacher can do live, if it asks for one
(`action`: the next-token bars for a text, or the training demo), then the connected model's
answer through its own chat template, with the lesson and those passages as the system message,
streamed a piece of text at a time."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

from ..errors import UsageError
from ..lessons import passages
from ..loop import generate
from ..records import Done
from ..sampling import Sampler

# A little randomness keeps a small model from repeating one sentence; top-p cuts the odd tail.
TEACHER_SAMPLER = Sampler(temperature=0.4, top_p=0.9)


CITED = 3  # passages shown per question
GROUNDING = 2  # of those, how many go into the model's instructions (a small model reads slowly)

# "what comes after <text>?", "what comes next after <text>", "the next token after <text>"
NEXT = re.compile(
    r"\b(?:comes?|follows?|next\s+(?:token|word))\s+(?:next\s+)?after\s*:?\s+(?P<text>.+?)\s*\??\s*$",
    re.IGNORECASE | re.DOTALL,
)
TRAINING = re.compile(r"\b(?:show|run|demo|see|watch)\b.{0,40}\btrain", re.IGNORECASE | re.DOTALL)
QUOTES = "\"'“”‘’«»`"


def action(question: str) -> dict | None:
    """The live thing a question asks the teacher to do: {"kind": "next", "text": ...} for the
    next-token bars of a text, {"kind": "training"} for the training demo, or None."""
    found = NEXT.search(question)
    if found:
        text = found.group("text").strip().strip(QUOTES).rstrip("?").strip(QUOTES)
        if text.strip():
            return {"kind": "next", "text": text}
    if TRAINING.search(question):
        return {"kind": "training"}
    return None


def cite(lesson: dict, question: str) -> dict:
    """What the page shows before the model speaks: the lesson's best passages and the action."""
    act = action(question)
    about = question.replace(act["text"], " ") if act and "text" in act else question  # not the words of their text
    ranked = passages.rank(passages.passages(lesson), about, CITED)
    return {"passages": [{**p.to_json(), "score": round(score, 3)} for p, score in ranked], "action": act}


def messages(lesson: dict, question: str, history: list[dict]) -> list[dict]:
    """System message from the lesson and the passages that answer this question best, then the
    earlier turns, then the new question."""
    ranked = passages.rank(passages.passages(lesson), question, GROUNDING)
    system = lesson["teacher"]["system"].strip()
    if ranked:
        system += "\n\n" + lesson["teacher"]["grounding"].strip() + "\n" + "\n".join(f"- {p.text}" for p, _ in ranked)
    return [
        {"role": "system", "content": system},
        *history,
        {"role": "user", "content": question},
    ]


def can_chat(backend) -> bool:
    """A server has a chat endpoint; a model in this process needs its chat template (declared: `can_chat`)."""
    return backend.can_chat


def answer(backend, lesson: dict, question: str, history: list[dict], max_new: int) -> Iterator[tuple[str, dict]]:
    """The teacher's answer as (event, data) pairs: which model speaks, its text a piece at a time,
    then done. What can fail before the first byte fails here, so it is an HTTP error, not an event."""
    text = prepare(backend, messages(lesson, question, history), max_new)
    events = (("text", {"text": piece}) for piece in text)
    return itertools.chain(
        [("model", {"model": backend.model, "backend": backend.name})], events, [("done", {"done": True})]
    )


def prepare(backend, conversation: list[dict], max_new: int) -> Iterator[str]:
    """Check everything that can fail before the stream starts, then hand back the text pieces."""
    if not backend.in_process:
        return server_pieces(backend, conversation, max_new)
    if not can_chat(backend):
        raise UsageError(f"{backend.model} has no chat template, so it cannot answer as a teacher")
    ids = backend.encode(backend.chat_text(conversation))
    if len(ids) + max_new > backend.context_length:
        raise UsageError("the conversation is too long for the model's context: reload the page to start a fresh one")
    return pieces(backend, ids, max_new)


def pieces(backend, ids: list[int], max_new: int) -> Iterator[str]:
    """The answer as it grows. Decoding everything so far and sending the new part keeps a
    character split across two tokens whole."""
    made: list[int] = []
    sent = ""
    for record in generate(backend, ids, max_new, TEACHER_SAMPLER, cache=True, show=1):
        if isinstance(record, Done):
            break
        if record.chosen.id in backend.eos_ids:
            break
        made.append(record.chosen.id)
        text = backend.decode(made)
        if text.endswith("\ufffd"):  # half a character: wait for the rest
            continue
        if text[len(sent) :]:
            yield text[len(sent) :]
        sent = text


def server_pieces(backend, conversation: list[dict], max_new: int) -> Iterator[str]:
    """The server applies its own chat template: /v1/chat/completions, streamed."""
    body = {
        "model": backend.model,
        "messages": conversation,
        "max_tokens": max_new,
        "stream": True,
        "temperature": TEACHER_SAMPLER.temperature,
        "top_p": TEACHER_SAMPLER.top_p,
    }
    with backend.client.events("/v1/chat/completions", body) as chunks:
        for chunk in chunks:
            choices = chunk.get("choices")
            choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
            delta = choice.get("delta")
            piece = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(piece, str) and piece:
                yield piece
