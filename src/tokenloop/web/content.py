"""Lesson content: YAML files in `tokenloop/lessons/`, loaded and checked once."""

from __future__ import annotations

import re
from importlib import resources
from urllib.parse import urlencode

import yaml
from pydantic import ValidationError

from ..errors import UsageError
from .schemas import LabLink

NAME = re.compile(r"^[a-z0-9_-]{1,40}$")


def available() -> list[str]:
    folder = resources.files("tokenloop") / "lessons"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load(name: str = "day01") -> dict:
    """A lesson by name, with the fields the page relies on checked."""
    if not NAME.match(name) or name not in available():
        raise UsageError(f"no lesson called {name!r}: choose one of {', '.join(available())}")
    lesson = yaml.safe_load((resources.files("tokenloop") / "lessons" / f"{name}.yaml").read_text(encoding="utf-8"))
    for key in ("title", "prompt", "steps", "recall", "quiz", "course_map", "ask_your_ai", "teacher"):
        if key not in lesson:
            raise UsageError(f"lesson {name} has no {key!r} section: fix lessons/{name}.yaml")
    for step in lesson["steps"]:
        if step.get("kind") == "choice" and not 0 <= step.get("answer", -1) < len(step.get("choices", [])):
            raise UsageError(f"lesson {name}: step {step.get('id')} has no valid answer index")
    for item in (lesson.get("try_it") or {}).get("items", []):
        item["href"] = lab_href(name, item)
    return lesson


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
