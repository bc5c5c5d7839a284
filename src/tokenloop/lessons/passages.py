"""The lesson's own passages, and a ranked search over them: what the teacher cites before the
model answers, and how it knows a question is outside the lesson.

A passage is one answer the lesson already gives: a step's explanation, a recall card, the
colleague's model answer, a quiz question with its right choice. The search is BM25 over word
stems, the ranking most search engines started from, with three additions that a lesson's short
passages need:

    score(passage, question) = Σ over the question's terms t that the passage holds:
        weight(t) · idf(t) · tf · (k1 + 1) / (tf + k1 · (1 - b + b · length / average length))
      + BIGRAM · Σ over two adjacent question stems found side by side in the passage: their mean idf

- idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)): a stem in few passages counts for more;
- fields are weighted (BM25F): a stem in the step's title or its question counts `HEADING` times,
  one in the explanation once, so the step whose heading asks the question wins;
- the question's stems are widened with the lesson's own synonyms (`SYNONYMS`: "KV" and "cache",
  "softmax" and "probability", "staircase" and "climb" and "re-read", ...) at weight `RELATED`;
- an adjacent pair ("kv cache", "causal mask", "first token") adds a bonus.

`relevance` says how much of a question the lesson speaks to at all: the share of the question's
idf that the best passage holds (a word no passage has counts as the rarest). Under `FLOOR` the
question is outside the lesson. Pure functions; the passages are read from the lesson dict.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass

K1, B = 1.5, 0.75
HEADING = 2.0  # a stem in a step's title or question counts this many times
RELATED = 0.5  # a synonym of the asked stem counts this much of the stem itself
BIGRAM = 0.6  # a pair of asked stems found side by side adds this times their mean idf
FLOOR = 0.3  # relevance under this: the question is outside the lesson
SHARE = 0.5  # a cited passage scores at least this share of the best one
WORD = re.compile(r"[a-z0-9]+")
# Phrases written as the lesson writes them: "re-read" -> "reread"; an "output token" is a token of the answer.
PHRASES = ((re.compile(r"\b(re|pre)-(?=[a-z])"), r"\1"), (re.compile(r"\boutput (?=tokens?\b)"), "answer "))
# Words that say nothing about which passage answers: left out of the index and of questions.
STOP = frozenset(
    "a an and are as at be by can do does for from how i in into is it its me of on or so that the "
    "their them then there these this to was we what when where which who why will with you your "
    "each every not no more than has have had been being very just also only our us "
    "my am did would could should may might must shall about any some please tell explain mean "
    "means know want like get give make thing things really actually if but ok okay hi hello "
    "happen happens happened too many much lot lots".split()
)
SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "ers", "er", "ed", "es", "ly", "s")
# The lesson's vocabulary: words a learner uses for what a passage calls otherwise (stemmed when read).
SYNONYMS = (
    ("kv", "cache", "key", "value"),
    ("softmax", "probability", "distribution", "score", "logit"),
    ("staircase", "climb", "reread", "grow", "later", "slow"),
    ("once", "one", "run", "pass", "repeat"),
    ("reply", "answer"),
    ("confident", "confidence", "sure", "certain", "favourite", "favorite", "top"),
    ("weight", "parameter"),
    ("training", "learn", "build", "nudged"),
    ("inference", "request", "serving", "artifact"),
    ("sampler", "pick", "choose", "select", "sampling", "greedy"),
    ("mask", "causal", "ahead"),
    ("exact", "approximation"),
    ("preemption", "preempt", "pause", "evict", "scheduler"),
    ("memory", "bytes", "ram", "vram", "gpu"),
    ("concurrency", "conversation", "fit", "user"),
    ("stop", "end", "eos", "limit"),
    ("plan", "draft", "whole"),
    ("append", "add", "feed"),
)


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
    text = text.lower()
    for phrase, written in PHRASES:
        text = phrase.sub(written, text)
    return [stem(w) for w in WORD.findall(text) if w not in STOP and len(w) > 1]


RELATED_TO = {stem(w): frozenset(map(stem, group)) - {stem(w)} for group in SYNONYMS for w in group}


@dataclass(frozen=True)
class Passage:
    source: str  # "step", "recall", "colleague", "quiz", "picture"
    title: str  # where on the page it is, as the learner sees it
    text: str
    step: str | None = None  # the step's id, for a step's explanation
    question: str = ""  # the step's own question (a heading field, weighted like the title)

    def to_json(self) -> dict:
        return asdict(self)


def passages(lesson: dict) -> list[Passage]:
    """Every answer the lesson gives, in page order."""
    found = []
    if lesson.get("picture"):
        found.append(Passage("picture", lesson["picture"]["title"], lesson["picture"]["text"].strip()))
    for step in lesson.get("steps", []):
        found.append(Passage("step", step["title"], step["explain"].strip(), step["id"], step.get("question", "")))
    for card in lesson.get("recall", []):
        found.append(Passage("recall", card["prompt"], card["answer"].strip()))
    if lesson.get("colleague"):
        col = lesson["colleague"]
        found.append(Passage("colleague", col["starter"], f"{col['starter']} {col['model_answer'].strip()}"))
    for q in lesson.get("quiz", []):
        found.append(Passage("quiz", q["question"], f"{q['question']} {q['choices'][q['answer']]}"))
    return found


@dataclass(frozen=True)
class Index:
    """The passages' weighted stem counts, lengths, pairs and document frequencies."""

    found: list[Passage]
    docs: list[Counter]
    pairs: list[set[tuple[str, str]]]
    lengths: list[float]
    df: Counter

    @classmethod
    def of(cls, found: list[Passage]) -> Index:
        docs, pairs = [], []
        for p in found:
            heading, body = stems(f"{p.title} {p.question}"), stems(p.text)
            doc: Counter = Counter()
            for s in heading:
                doc[s] += HEADING
            for s in body:
                doc[s] += 1
            docs.append(doc)
            pairs.append(set(zip(heading, heading[1:])) | set(zip(body, body[1:])))
        return cls(found, docs, pairs, [sum(d.values()) for d in docs], Counter(s for d in docs for s in d))

    def idf(self, s: str) -> float:
        n, df = len(self.docs), self.df.get(s, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def terms(self, question: str) -> tuple[dict[str, float], list[str]]:
        """The asked stems at weight 1, their synonyms at `RELATED`; and the asked stems in order."""
        asked = stems(question)
        weights = {s: 1.0 for s in asked}
        for s in asked:
            for other in RELATED_TO.get(s, ()):
                weights.setdefault(other, RELATED)
        return weights, asked

    def scores(self, question: str) -> list[float]:
        weights, asked = self.terms(question)
        if not weights or not self.docs:
            return [0.0] * len(self.docs)
        average = sum(self.lengths) / len(self.lengths)
        bigrams = [(a, b) for a, b in zip(asked, asked[1:]) if a != b]
        out = []
        for doc, pairs, length in zip(self.docs, self.pairs, self.lengths):
            score = 0.0
            for s, weight in weights.items():
                tf = doc.get(s, 0)
                if tf:
                    score += weight * self.idf(s) * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / average))
            for a, b in bigrams:
                if (a, b) in pairs:
                    score += BIGRAM * (self.idf(a) + self.idf(b)) / 2
            out.append(score)
        return out

    def relevance(self, question: str) -> float:
        """The share of the question's idf (its own stems only) held by the passage that holds most."""
        asked = set(stems(question))
        if not asked or not self.docs:
            return 0.0
        rarest = math.log(1 + (len(self.docs) + 0.5) / 0.5)  # a stem no passage has
        total = sum(self.idf(s) if self.df.get(s) else rarest for s in asked)
        held = max(
            sum(self.idf(s) for s in asked if doc.get(s) or any(doc.get(o) for o in RELATED_TO.get(s, ())))
            for doc in self.docs
        )
        return held / total


def rank(found: list[Passage], question: str, k: int = 3) -> list[tuple[Passage, float]]:
    """The k passages that answer `question` best, best first, with their scores (none scoring 0)."""
    index = Index.of(found)
    scored = [(p, s) for p, s in zip(found, index.scores(question)) if s > 0]
    scored.sort(key=lambda pair: -pair[1])
    return scored[:k]


def relevance(found: list[Passage], question: str) -> float:
    return Index.of(found).relevance(question)


def cite(found: list[Passage], question: str, k: int = 3, steps: int = 2) -> list[tuple[Passage, float]]:
    """What the teacher shows: the steps that answer best first (at most `steps`, each scoring at
    least `SHARE` of the best step), then the best of the other passages, k in all. The steps come
    first because a step is where the lesson teaches; a recall card or a quiz answer repeats it."""
    ranked = rank(found, question, len(found))
    best = [(p, s) for p, s in ranked if p.source == "step"]
    chosen = [(p, s) for p, s in best[:steps] if s >= SHARE * best[0][1]]
    others = [(p, s) for p, s in ranked if p.source != "step" and s >= SHARE * ranked[0][1]]
    return chosen + others[: k - len(chosen)]
