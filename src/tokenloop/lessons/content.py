"""Lesson content: YAML files in `tokenloop/lessons/`, loaded and checked once."""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Literal
from urllib.parse import urlencode

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UsageError

NAME = re.compile(r"^[a-z0-9_-]{1,40}$")
# The sections the page reads in every lesson (lesson.js, teacher.js, cluster.js, map.js, tryit.js,
# export.js, readnext.js, recall.js, raw.js), and the fields it reads inside them. Optional:
# loop_code (loopcode.js), raw.logprobs and raw.metrics (raw.js).
SECTIONS = (
    "title",
    "prompt",
    "steps",
    "recall",
    "quiz",
    "course_map",
    "ask_your_ai",
    "teacher",
    "colleague",
    "raw",
    "cluster",
    "try_it",
    "for_your_ai",
    "read_next",
)
FIELDS = {
    "teacher": (
        "title",
        "greeting",
        "system",
        "grounding",
        "cited",
        "small_model",
        "ask_model",
        "outside",
        "elsewhere",
        "actions",
    ),
    "course_map": ("title", "note", "you_are_here", "here", "pipeline", "loop"),
    "try_it": ("title", "intro", "items"),
    "for_your_ai": ("title", "button", "intro", "instruction"),
    "read_next": ("title", "source"),
}
KINDS = ("choice", "probability", "estimate", "curve")
# What a reveal's number means on other hardware (docs/course.md §4): the tag, and its sentence.
HONESTY = ("exact", "shape", "cause_differs")
UNITS = ("tokens", "ms", "s", "bytes", "users", "conversations", "times")
SHAPES = ("flat", "line", "staircase", "knee")

# The course's one vocabulary for how a step's cost moves with the text (the seed lesson's): a
# word a lesson teaches is never graded wrong elsewhere. Each word, and the phrase in a curve's label
# that names the case it describes: without a cache the cost climbs with the sequence (the
# staircase); with a cache it stays flat. A curve naming that case must accept the word.
VOCABULARY = {"staircase": "without a cache", "flat": "with a kv cache"}

MAX_PROMPT_CHARS = 4000  # a lab prompt or a question for the teacher
MAX_LAB_NEW = 256  # most tokens one Run may add


class LabLink(BaseModel):
    """A lab opened with its settings filled in (`/lab?prompt=...&temperature=...`): the lesson's
    try-it items, checked when the lesson loads; the lab page reads the same names from its URL."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not ignored

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    chat: bool = False
    cache: bool = True
    temperature: float = Field(0.0, ge=0, le=5)
    top_k: int | None = Field(None, ge=1, le=100_000)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    max_new: int = Field(16, ge=1, le=MAX_LAB_NEW)


class Expect(BaseModel):
    """What a try-it item promises, in a form tests/lessons/test_try_it.py runs and checks on the
    embedded model. Every item also promises at least half its `max_new` tokens."""

    model_config = ConfigDict(extra="forbid")

    repeatable: bool = False  # run twice, the same text (greedy)
    top_over: float | None = Field(None, gt=0, lt=1)  # the first step's top raw bar is above this
    flatter: bool = False  # the bars after the sampler are flatter than the raw ones
    seed_changes_text: bool = False  # another seed, another text
    chat_adds_tokens: bool = False  # the chat template adds tokens the learner never typed
    tokens_in: Literal["whole", "one"] | None = None  # every step reads the whole text, or one token after step 1
    same_text_as: str | None = None  # the same greedy text as another item of the lesson (the cache changes no answer)
    prefill_longest: bool = False  # step 1 (the prefill) takes longer than the typical step after it
    branch_changes_text: bool = False  # picking a lower bar at step 1 changes the text that follows


def accepted(curve: dict) -> list[str]:
    """The shapes a curve step grades right: its answer and the words it `also` accepts."""
    return [curve["answer"], *curve.get("also", [])]


def available() -> list[str]:
    folder = resources.files("tokenloop") / "lessons"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def listing() -> list[dict]:
    """Every lesson's id and title, in course order (the file names sort that way)."""
    return [{"id": name, "title": load(name)["title"]} for name in available()]


def load(name: str = "day01") -> dict:
    """A lesson by name, with the fields the page relies on checked."""
    if not NAME.match(name) or name not in available():
        raise UsageError(f"no lesson called {name!r}: choose one of {', '.join(available())}")
    return _read(name)


@functools.cache
def _read(name: str) -> dict:
    """A lesson file parsed and checked once per process (the page asks for lessons on every
    switch, citation and copy); callers treat the dict as read-only."""
    lesson = yaml.safe_load((resources.files("tokenloop") / "lessons" / f"{name}.yaml").read_text(encoding="utf-8"))
    check(name, lesson)
    for item in (lesson.get("try_it") or {}).get("items", []):
        item["href"] = lab_href(name, item)
    return lesson


def check(name: str, lesson: dict) -> None:
    """The whole lesson: its sections, its teacher's fields, every step."""
    for key in SECTIONS:
        if key not in lesson:
            raise UsageError(f"lesson {name} has no {key!r} section: fix lessons/{name}.yaml")
    for section, fields in FIELDS.items():
        for key in fields:
            if key not in (lesson[section] or {}):
                raise UsageError(f"lesson {name}'s {section} section has no {key!r}: fix lessons/{name}.yaml")
    steps = [step.get("id") for step in lesson["steps"]]
    for card in lesson["recall"]:
        if card.get("after") not in steps:
            raise UsageError(
                f"lesson {name}: recall card {card.get('prompt', '')[:40]!r} has after: {card.get('after')!r}: "
                f"name the step it follows (one of {', '.join(map(str, steps))}), so cards sit between the steps"
            )
    items = (lesson.get("try_it") or {}).get("items", [])
    for item in items:
        check_expect(name, item, [i.get("id") for i in items])
    for step in lesson["steps"]:
        check_step(name, step)
        if "honesty" in step and not step.get("cpu_note") and step["honesty"] not in (lesson.get("honesty") or {}):
            raise UsageError(
                f"lesson {name}: step {step.get('id')} is tagged {step['honesty']} but no sentence says what that "
                "means on a CPU: add a cpu_note to the step or the tag to the lesson's honesty section"
            )


def check_step(name: str, step: dict) -> None:
    """One step's fields for its kind; a bad one is a one-line error naming the step and the fix."""
    where = f"lesson {name}: step {step.get('id')}"
    kind = step.get("kind")
    if kind not in KINDS:
        raise UsageError(f"{where} has kind {kind!r}: use one of {', '.join(KINDS)}")
    if kind == "choice" and not 0 <= step.get("answer", -1) < len(step.get("choices", [])):
        raise UsageError(f"{where} has no valid answer index")
    if "honesty" in step and step["honesty"] not in HONESTY:
        raise UsageError(f"{where} has honesty {step['honesty']!r}: use one of {', '.join(HONESTY)}")
    if kind in ("estimate", "curve") and "honesty" not in step:
        raise UsageError(
            f"{where} reveals a measurement but has no honesty tag: add honesty: exact, shape or cause_differs"
        )
    if kind == "estimate":
        low, high = step.get("min"), step.get("max")
        if step.get("unit") not in UNITS:
            raise UsageError(f"{where} has unit {step.get('unit')!r}: use one of {', '.join(UNITS)}")
        if not (isinstance(low, int | float) and isinstance(high, int | float) and 0 < low < high):
            raise UsageError(f"{where} needs 0 < min < max for its log slider (got min {low!r}, max {high!r})")
    if kind == "curve":
        curves = step.get("curves")
        if not curves or any(
            c.get("answer") not in SHAPES or not c.get("label") or not set(c.get("also", [])) <= set(SHAPES)
            for c in curves
        ):
            raise UsageError(
                f"{where} needs curves: a list of {{label, answer, also}} with answers among {', '.join(SHAPES)}"
            )


def check_expect(name: str, item: dict, ids: list) -> None:
    """A try-it item's `expect`: known checks only, and `same_text_as` naming another item."""
    try:
        expect = Expect.model_validate(item.get("expect") or {})
    except ValidationError as e:
        first = e.errors()[0]
        raise UsageError(
            f"lesson {name}: try-it {item.get('id')}: expect.{'.'.join(map(str, first['loc']))}: {first['msg']}: "
            f"fix lessons/{name}.yaml"
        ) from None
    if expect.same_text_as is not None and (expect.same_text_as not in ids or expect.same_text_as == item.get("id")):
        raise UsageError(
            f"lesson {name}: try-it {item.get('id')}: same_text_as {expect.same_text_as!r} is not another item"
        )


def taught(lesson: dict) -> set[str]:
    """The vocabulary words a lesson's own steps use (VOCABULARY's keys found in their text)."""
    text = " ".join(f"{s.get('question', '')} {s.get('explain', '')}" for s in lesson["steps"]).lower()
    return {word for word in VOCABULARY if word in text}


def check_vocabulary(lessons: dict[str, dict]) -> None:
    """No lesson grades a word another lesson taught: a curve whose label names a case the course
    has a word for (VOCABULARY) accepts that word, wherever the word was taught."""
    words: dict[str, str] = {}  # each word, and the first lesson (in course order) that teaches it
    for who in sorted(lessons):
        for word in sorted(taught(lessons[who])):
            words.setdefault(word, who)
    for who, lesson in lessons.items():
        for step in lesson["steps"]:
            for curve in step.get("curves") or []:
                for word, phrase in VOCABULARY.items():
                    if word in words and phrase in curve["label"].lower() and word not in accepted(curve):
                        raise UsageError(
                            f"lesson {who}: step {step['id']} grades {word!r} wrong for {curve['label']!r}, "
                            f"the word lesson {words[word]} teaches for it: add it to the curve's answer or also"
                        )


def lab_href(lesson: str, item: dict) -> str:
    """The lab's address with every setting of a try-it item: the ones the YAML gives, the lab's
        defaults for the rest (booleans as 1 and 0, "off" as empty), so each experiment starts clean; the
    item's id and its lesson's, so the lab finds its "Look for" note and links back to that lesson."""
    if not NAME.match(str(item.get("id", ""))):
        raise UsageError(f"lesson {lesson}: a try-it item has no id of a-z, 0-9, - and _: fix lessons/{lesson}.yaml")
    try:
        settings = LabLink.model_validate(item.get("lab") or {}).model_dump()
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(
            f"lesson {lesson}: try-it {item['id']}: {where}: {first['msg']}: fix lessons/{lesson}.yaml"
        ) from None
    query = {k: "" if v is None else int(v) if isinstance(v, bool) else v for k, v in settings.items()}
    return "/lab?" + urlencode({**query, "try": item["id"], "lesson": lesson})
