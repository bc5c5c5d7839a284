"""The lesson's own passages, and a ranked search over them: what the teacher cites before the
model answers.

A passage is one answer the lesson already gives: a step's explanation, a recall card, the
colleague's model answer, a quiz question with its right choice. The search is BM25 over word
stems, the ranking most search engines started from:

    score(passage, question) = Σ over the question's stems s that the passage holds:
        idf(s) · tf · (k1 + 1) / (tf + k1 · (1 - b + b · length / average length))

with idf(s) = ln(1 + (N - df + 0.5) / (df + 0.5)): a stem in few passages counts for more, a
passage that repeats it counts for more but with diminishing returns, a long passage is
discounted. Pure functions; the passages are read from the lesson dict the app loaded.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass

K1, B = 1.5, 0.75
WORD = re.compile(r"[a-z0-9]+")
# Words that say nothing about which passage answers: left out of the index and of questions.
STOP = frozenset(
    "a an and are as at be by can do does for from how i in into is it its me of on or so that the "
    "their them then there these this to was we what when where which who why will with you your "
    "one each every not no more than has have had been being very just also only our us".split()
)
SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "ers", "er", "ed", "es", "ly", "s")


def stem(word: str) -> str:
    """A crude stem: 'training', 'trained', 'trains' -> 'train'; 'weights' -> 'weight'."""
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                word += "y"
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":  # 'runn' -> 'run'
        word = word[:-1]
    return word


def stems(text: str) -> list[str]:
    return [stem(w) for w in WORD.findall(text.lower()) if w not in STOP]


@dataclass(frozen=True)
class Passage:
    source: str  # "step", "recall", "colleague", "quiz", "picture"
    title: str  # where on the page it is, as the learner sees it
    text: str
    step: str | None = None  # the step's id, for a step's explanation

    def to_json(self) -> dict:
        return asdict(self)


def passages(lesson: dict) -> list[Passage]:
    """Every answer the lesson gives, in page order."""
    found = []
    if lesson.get("picture"):
        found.append(Passage("picture", lesson["picture"]["title"], lesson["picture"]["text"].strip()))
    for step in lesson.get("steps", []):
        found.append(Passage("step", step["title"], step["explain"].strip(), step["id"]))
    for card in lesson.get("recall", []):
        found.append(Passage("recall", card["prompt"], card["answer"].strip()))
    if lesson.get("colleague"):
        col = lesson["colleague"]
        found.append(Passage("colleague", col["starter"], f"{col['starter']} {col['model_answer'].strip()}"))
    for q in lesson.get("quiz", []):
        found.append(Passage("quiz", q["question"], f"{q['question']} {q['choices'][q['answer']]}"))
    return found


def rank(found: list[Passage], question: str, k: int = 3) -> list[tuple[Passage, float]]:
    """The k passages that answer `question` best, best first, with their scores (none scoring 0)."""
    asked = set(stems(question))
    if not asked or not found:
        return []
    docs = [Counter(stems(f"{p.title} {p.text}")) for p in found]
    lengths = [sum(d.values()) for d in docs]
    average = sum(lengths) / len(lengths)
    df = Counter(s for d in docs for s in d)
    n = len(docs)
    scored = []
    for passage, doc, length in zip(found, docs, lengths):
        score = 0.0
        for s in asked:
            tf = doc.get(s, 0)
            if tf:
                idf = math.log(1 + (n - df[s] + 0.5) / (df[s] + 0.5))
                score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / average))
        if score > 0:
            scored.append((passage, score))
    scored.sort(key=lambda pair: -pair[1])
    return scored[:k]
