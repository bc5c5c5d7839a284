"""Lesson content: YAML files in `tokenloop/lessons/`, loaded and checked once."""

from __future__ import annotations

import functools
import re
from importlib import resources
from urllib.parse import urlencode

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UsageError

NAME = re.compile(r"^[a-z0-9_-]{1,40}$")
# The sections the page reads in every lesson (lesson.js, teacher.js, cluster.js, map.js, tryit.js,
# export.js, readnext.js), and the fields it reads inside them.
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
        if not curves or any(c.get("answer") not in SHAPES or not c.get("label") for c in curves):
            raise UsageError(
                f"{where} needs curves: a list of {{label, answer}} with answers among {', '.join(SHAPES)}"
            )


def lab_href(lesson: str, item: dict) -> str:
    """The lab's address with every setting of a try-it item: the ones the YAML gives, the lab's
    defaults for the rest (booleans as 1 and 0, "off" as empty), so each experiment starts clean."""
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
    return "/lab?" + urlencode({**query, "try": item["id"]})
