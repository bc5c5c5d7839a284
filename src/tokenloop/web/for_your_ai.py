""" "Copy this lesson for your AI": the lesson on screen as one Markdown document, with the numbers
measured on the connected model (`lessons.markdown.render`, the same renderer as `tokenloop lesson
--markdown`).

The page sends the lesson's name and the learner's guesses (they live in the browser; their schema
is `schemas.CopyIn`). Everything measured comes from here: what costs a forward pass or two is
measured again (`lessons.markdown.measure`), and the demos' and the live steps' results are the
ones this browser's page drew (kept in its session: `jobs.py`).
"""

from __future__ import annotations

from ..lessons import content
from ..lessons import markdown as lesson_markdown
from . import jobs
from .deps import local_of


def markdown(state, name: str | None, guesses: dict, lab_url: str, session=None) -> str:
    lesson = state.lesson if name is None else content.load(name)
    kept = jobs.kept(session, lesson["id"])["results"] if session is not None else {}
    live = lesson_markdown.measure(state.backend, lesson, local=local_of(state), skip=kept)
    live["results"].update(kept)  # what the page drew, not measured again
    live["guesses"] = guesses
    live["lab"] = lab_url
    return lesson_markdown.render(lesson, live)
