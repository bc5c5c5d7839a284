"""Request and response models of the web API. Every input has a size bound, so a request that
is too large is refused with a 4xx answer before any model work starts."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StringConstraints, model_validator

from ..lessons.content import MAX_LAB_NEW, MAX_PROMPT_CHARS, SHAPES

MAX_SCORE_CHARS = 6000  # a pasted text for score mode
MAX_LAB_TOKENS = 1024  # most tokens (prompt and generated) a lab session may hold
MAX_SHOW = 50  # most candidates shown per step


class In(BaseModel):
    """Requests: unknown fields are refused, so a typo is an error rather than ignored; values are
    not coerced (strict: `"chat": "yes"`, `"consent": 1` and `"top_k": "5"` are refused, not read
    as true and 5); text with an unpaired surrogate (valid JSON, not valid Unicode) is refused
    before it reaches a tokenizer."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        if _lone_surrogate(data):
            raise ValueError("the text holds an unpaired surrogate (\\ud800-\\udfff): send valid Unicode")
        return data


def _lone_surrogate(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if depth > 8:
        return False
    if isinstance(value, dict):
        return any(_lone_surrogate(k, depth + 1) or _lone_surrogate(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v, depth + 1) for v in value)
    return False


class Out(BaseModel):
    """Responses may carry more fields than listed (records only ever add fields)."""

    model_config = ConfigDict(extra="allow")


# --- requests ------------------------------------------------------------------------------------
class SamplerIn(In):
    temperature: float = Field(0.0, ge=0, le=5, description="0 = greedy")
    top_k: int | None = Field(None, ge=1, le=100_000)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)


class NextIn(In):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    top_k: int = Field(8, ge=1, le=MAX_SHOW)
    chat: bool = False


class StartIn(In):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    chat: bool = False
    cache: bool = Field(True, description="keep a KV cache; false: the whole sequence goes through every step")
    resume: list[int] = Field(
        default_factory=list, max_length=MAX_LAB_TOKENS, description="generated ids to restore after a reload"
    )


class StepIn(In):
    sampler: SamplerIn = Field(default_factory=SamplerIn)
    show: int = Field(8, ge=1, le=MAX_SHOW)


class RunIn(StepIn):
    max_new: int = Field(16, ge=1, le=MAX_LAB_NEW)


class BranchIn(In):
    step: int = Field(
        ge=1, le=MAX_LAB_TOKENS, description="the step whose pick is replaced (1 = first generated token)"
    )
    token_id: int = Field(ge=0, le=10_000_000, description="one of that step's shown candidates")


class CompareIn(In):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    chat: bool = False
    top_k: int = Field(8, ge=1, le=20)
    max_new: int = Field(8, ge=0, le=32)


class ScoreIn(In):
    text: str = Field(min_length=1, max_length=MAX_SCORE_CHARS)


class Turn(In):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_PROMPT_CHARS)


class TeacherIn(In):
    question: str = Field(min_length=1, max_length=2000)
    history: list[Turn] = Field(default_factory=list, max_length=8)
    max_new: int = Field(96, ge=1, le=256)
    lesson: str | None = Field(None, max_length=40)  # whose teacher section instructs the model (default: the app's)
    seconds: float = Field(45.0, gt=0, le=300)  # the longest the answer may stream (wall clock)


class TrainingIn(In):
    steps: int = Field(6, ge=1, le=50)


class StaircaseIn(In):
    max_len: int = Field(256, ge=8, le=2048)
    points: int = Field(6, ge=2, le=16)
    repeats: int = Field(2, ge=1, le=5)


class CiteIn(In):
    question: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    lesson: str | None = Field(None, max_length=40)  # the lesson shown (default: the app's)


class StopIn(In):
    page: str | None = Field(None, max_length=40, description="the id of the page going away")


class ServerStaircaseIn(In):
    max_len: int = Field(512, ge=8, le=32768)
    points: int = Field(4, ge=2, le=16)
    repeats: int = Field(2, ge=1, le=5)
    gaps: int = Field(8, ge=2, le=64)


class FillIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    consent: bool = False  # the click after the stated plan
    remote: bool = False  # "I run this server": needed when it is not on this machine


class ConsentIn(BaseModel):
    """Lesson 6's steps 3 and 5 on a server: the click after their stated plan (`web/draws.plan_first`)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    consent: bool = False
    remote: bool = False  # "I run this server": needed when it is not on this machine


StepId = Annotated[str, StringConstraints(max_length=40)]
MOST_GUESSED = 1e12  # above any estimate's slider
CURVES = 8  # the most curves a step asks for


def guess(value):
    """A guess as its step kind keeps it: a number (a choice's index, a probability in %, an
    estimate) or a curve step's list of shape names."""
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= MOST_GUESSED
    ):
        return value
    if isinstance(value, list) and len(value) <= CURVES and all(v in SHAPES for v in value):
        return value
    raise ValueError(
        f"a guess is a number from 0 to {MOST_GUESSED:,.0f} or a list of at most {CURVES} curve shapes "
        f"({', '.join(SHAPES)})"
    )


Guess = Annotated[object, PlainValidator(guess, json_schema_input_type=float | list[str])]


# The Markdown copy's request: the lesson on screen and the learner's guesses (they live in the
# browser), each as its step kind keeps it.
class CopyIn(In):
    lesson: str | None = Field(None, max_length=40, description="the lesson on screen (default: the app's own)")
    guesses: dict[StepId, Guess] = Field(
        default_factory=dict, max_length=50, description="the learner's guesses by step id, as the page keeps them"
    )


# --- responses -----------------------------------------------------------------------------------
class ErrorOut(BaseModel):
    error: str


# The responses below mirror the records' JSON (`tokenloop.records`): tests/test_records.py checks
# that each one lists exactly the fields its record writes.
class CandidateOut(Out):
    id: int
    token: str
    prob: float | None  # None only for a step restored after a reload (its probability is not kept)
    logprob: float | None


class NextOut(Out):
    backend: str
    model: str
    prompt_ids: list[int]
    distribution: str
    top: list[CandidateOut]
    other: float
    ms: float


class StepOut(Out):
    step: int
    position: int
    chosen: CandidateOut
    top: list[CandidateOut]
    ms: float
    cache: bool
    distribution: str
    other: float
    tokens_in: int
    sampler: str
    processed: list[CandidateOut] | None
    extra: dict  # the backend's own numbers; in the lab also "restored" or "branched"


class DoneOut(Out):
    done: bool
    text: str
    ids: list[int]
    stop: str
    tokens_per_s: float
    seconds: float
    prompt_ids: list[int]


class TokenOut(Out):
    id: int
    token: str


class LabOut(Out):
    """A session's lab: the prompt's tokens and the record of every step so far."""

    started: bool
    prompt: str
    chat: bool
    cache: bool
    prompt_tokens: list[TokenOut]
    steps: list[StepOut]
    text: str
    limit: int


class ScoredToken(Out):
    id: int
    token: str
    prob: float | None  # None for the first token: nothing comes before it
    rank: int | None
    top: TokenOut | None


class ScoreOut(Out):
    model: str
    tokens: list[ScoredToken]
    mean_logprob: float | None
    perplexity: float | None
    ms: float


class TeacherModelOut(Out):
    """The teacher's model and its size (`web/teacher.about`): a small one answers only when asked."""

    model: str
    parameters: int | None  # None: its size is unknown (and it counts as small)
    size: str  # "135 million parameters"
    small: bool  # under large_from parameters, or of unknown size
    large_from: int


class InfoOut(Out):
    backend: str
    model: str
    context_length: int
    vocab_size: int | None
    full_vocab: bool
    compare: str | None
    can_score: bool
    can_chat: bool
    curl: str
    teacher: TeacherModelOut | None = None


class CopyOut(Out):
    markdown: str
