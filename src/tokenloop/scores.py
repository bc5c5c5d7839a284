"""What one forward pass says about the next token, and the distributions read from it.

`Scores` is what every backend returns; `Distribution` keeps a distribution as its scores and
their log-normaliser, so a step never builds a vocabulary-sized softmax; `candidates` turns the
top of one into records with token text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import sampling
from .records import Candidate

if TYPE_CHECKING:
    import torch


@dataclass
class Scores:
    """What one forward pass says about the next token: a value per token of a support.

    - `support` None: the support is the whole vocabulary (index == token id) and `values` are
      the model's logits (unnormalised; the raw distribution is their softmax).
    - `support` given: the support is only those token ids (a server's top-k) and `values` are
      the server's log-probabilities for them; the mass outside them is unknown.
    """

    values: torch.Tensor | np.ndarray  # 1-D, one per entry of the support: logits, or a top-k's log-probabilities
    support: torch.Tensor | None = None  # the token id of each entry; None: the whole vocabulary
    tokens_in: int = 0  # tokens the model processed to produce these scores
    extra: dict[str, Any] = field(default_factory=dict)  # backend timings, cached tokens, ...

    def token_id(self, index: int) -> int:
        return index if self.support is None else int(self.support[index])


@dataclass(frozen=True)
class Distribution:
    """A distribution over a support, kept as its scores and their log-normaliser:
    logprob(i) = scores[i] - log_z and prob(i) = exp(logprob(i)).

    A step shows a handful of entries, so nothing the size of the vocabulary is built beyond the
    scores the model already gave: one pass for log_z, one for the top-k."""

    scores: torch.Tensor | np.ndarray  # 1-D, over the support
    log_z: float
    values: np.ndarray = field(init=False, repr=False)  # the scores as numpy, for cheap reads of single entries

    def __post_init__(self):
        object.__setattr__(self, "values", sampling.scores_array(self.scores))

    @classmethod
    def raw(cls, scores: Scores) -> Distribution:
        """The raw distribution: softmax of the logits. A server's top-k already holds log-probabilities."""
        return cls(scores.values, sampling.log_normalizer(scores.values) if scores.support is None else 0.0)

    @classmethod
    def of(cls, probs: torch.Tensor) -> Distribution:
        """A distribution given as probabilities (the sampler's processed one)."""
        return cls(probs.log(), 0.0)

    def logprob(self, index: int) -> float:
        return float(self.values[index]) - self.log_z

    def prob(self, index: int) -> float:
        return math.exp(self.logprob(index))

    def rank(self, index: int) -> int:
        """1 for the most likely entry; ties share the better rank."""
        return int((self.values > self.values[index]).sum()) + 1

    def candidate(self, backend, scores: Scores, index: int) -> Candidate:
        """The entry at `index` of the support as a record with its token's text."""
        token_id = scores.token_id(index)
        logprob = self.logprob(index)
        return Candidate(token_id, backend.token_text(token_id), math.exp(logprob), logprob)


def candidates(backend, scores: Scores, dist: Distribution, k: int, kept_only: bool = False) -> list[Candidate]:
    """The k most likely entries of a distribution, as records with token text. `kept_only`, for
    the distribution after the sampler: entries of probability 0 were cut by top-k or top-p and are
    left out (the lab once drew them as special tokens at 0.0% below the few that top-p kept). The
    raw distribution keeps them: a server's "impossible" candidate (-9999) is shown as 0%."""
    top = [dist.candidate(backend, scores, index) for index in sampling.top_indices(dist.scores, k)]
    return [c for c in top if c.prob > 0] if kept_only else top
