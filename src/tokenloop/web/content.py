"""Lesson content: YAML files in `tokenloop/lessons/`, loaded and checked once."""

from __future__ import annotations

import re
from importlib import resources

import yaml

from ..errors import UsageError

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
    return lesson
