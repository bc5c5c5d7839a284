"""The records that every part of tokenloop passes around.

The loop yields `Step` records and ends with a `Done`; `next` produces one `NextToken`. The
terminal view, `--json`, the web page (whose response schemas are derived from these classes) and
the benchmarks all read these, and their JSON shapes (`to_json`) are a contract: add fields, never
rename or remove them. A backend's own numbers (a server's timings, cached tokens) sit under one
key, `extra`, so they can never overwrite a field of the record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args


def _finite(x: float) -> float | None:
    """JSON has no infinity: a probability of exactly zero has logprob None (and an unknown one, NaN, too)."""
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Candidate:
    """One vocabulary entry with its probability under a distribution."""

    id: int
    token: str  # the token's text as it appears in the output (may start with a space)
    prob: float
    logprob: float

    def to_json(self) -> dict:
        return {"id": self.id, "token": self.token, "prob": _finite(self.prob), "logprob": _finite(self.logprob)}

    @classmethod
    def from_json(cls, data: dict) -> Candidate:
        prob, logprob = data.get("prob"), data.get("logprob")
        return cls(
            int(data["id"]),
            str(data["token"]),
            math.nan if prob is None else float(prob),
            (-math.inf if prob is not None else math.nan) if logprob is None else float(logprob),
        )


@dataclass(frozen=True, kw_only=True)
class NextToken:
    """One step only: the next-token distribution for a prompt."""

    backend: str
    model: str
    prompt_ids: list[int]
    top: list[Candidate]
    distribution: str = "raw"  # "raw" (softmax of the logits) or "processed" (after the sampler)
    ms: float = 0.0

    @property
    def other(self) -> float:
        """Probability mass outside the candidates shown."""
        return max(0.0, 1.0 - sum(c.prob for c in self.top))

    def to_json(self) -> dict:
        return {
            "backend": self.backend,
            "model": self.model,
            "prompt_ids": self.prompt_ids,
            "distribution": self.distribution,
            "top": [c.to_json() for c in self.top],
            "other": self.other,
            "ms": self.ms,
        }


@dataclass(frozen=True, kw_only=True)
class Step:
    """One turn of the loop: the distribution, the pick, the append."""

    step: int  # 1 for the first generated token
    position: int  # index of the new token in the whole sequence
    chosen: Candidate  # the picked token, with its probability under the raw distribution
    top: list[Candidate]  # top candidates of the raw distribution
    ms: float  # wall time of the step: forward pass, distribution, pick
    cache: bool  # whether a KV cache was used
    tokens_in: int = 0  # tokens the model processed in this step (whole sequence without a cache)
    processed: list[Candidate] | None = None  # top of the distribution after the sampler, if sampling
    sampler: str = "greedy"  # how the pick was made, e.g. "greedy", "T=0.8 top_p=0.9", "restored", "your pick"
    extra: dict = field(default_factory=dict)  # backend-specific numbers (server ms, cached tokens), under "extra"

    @property
    def other(self) -> float:
        return max(0.0, 1.0 - sum(c.prob for c in self.top))

    def to_json(self) -> dict:
        out = {
            "step": self.step,
            "position": self.position,
            "chosen": self.chosen.to_json(),
            "top": [c.to_json() for c in self.top],
            "ms": self.ms,
            "cache": self.cache,
            "distribution": "raw",
            "other": self.other,
            "tokens_in": self.tokens_in,
            "sampler": self.sampler,
            "processed": None if self.processed is None else [c.to_json() for c in self.processed],
            "extra": dict(self.extra),
        }
        return out

    @classmethod
    def from_json(cls, data: dict) -> Step:
        """A step back from its JSON (a lab run the browser kept across a reload)."""
        processed = data.get("processed")
        return cls(
            step=int(data["step"]),
            position=int(data["position"]),
            chosen=Candidate.from_json(data["chosen"]),
            top=[Candidate.from_json(c) for c in data.get("top") or []],
            ms=float(data.get("ms") or 0.0),
            cache=bool(data.get("cache", True)),
            tokens_in=int(data.get("tokens_in") or 0),
            processed=None if processed is None else [Candidate.from_json(c) for c in processed],
            sampler=str(data.get("sampler", "greedy")),
            extra=dict(data.get("extra") or {}),
        )


# Why a run stopped: an end token, `max_new` tokens made, the context (or the lab's cap) full,
# or the learner pressed Stop in the lab.
Stop = Literal["eos", "max_new", "context", "stopped"]
STOPS: frozenset[str] = frozenset(get_args(Stop))


@dataclass(frozen=True, kw_only=True)
class Done:
    """The end of a loop: the generated text and why it stopped."""

    text: str  # the generated text only (the prompt is not repeated)
    ids: list[int]  # the generated token ids
    stop: Stop  # "eos", "max_new", "context" or "stopped" (the lab's Stop button)
    tokens_per_s: float
    seconds: float = 0.0
    prompt_ids: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "done": True,
            "text": self.text,
            "ids": self.ids,
            "stop": self.stop,
            "tokens_per_s": self.tokens_per_s,
            "seconds": self.seconds,
            "prompt_ids": self.prompt_ids,
        }
