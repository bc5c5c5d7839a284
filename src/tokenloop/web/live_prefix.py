"""Lesson 8's live steps for the page: `cost/prefix_lesson.py`'s, run on the server the app
started with or on the model in this process, marked as measured. `routes/lesson08.py` serves them."""

from __future__ import annotations

from ..cost import prefix_lesson
from .live import Progress, measured, needed, readable


def run(key: str, server, local, demo: dict, on_progress: Progress = None) -> dict:
    if server is None:
        readable(needed(local))  # refused, in the app's words, where no model runs here
    return {**prefix_lesson.STEPS[key](server, local, demo, on_progress), "reveal": measured()}


def survival_plan(server, demo: dict) -> dict:
    return prefix_lesson.survival_plan(server, demo)
