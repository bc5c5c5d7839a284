"""The generation loop. It reads like the lesson's pseudo-code:

    ids = encode(prompt)
    repeat:
        scores = model(ids)          # one forward pass
        probs  = softmax(scores)     # a probability for every token
        next   = pick(probs)         # greedy or sampled
        ids.append(next)             # append and go again
        stop at the end token

`generate` yields one `Step` per token and a final `Done`; nothing prints from here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch

from . import sampling
from .backends import Backend, Scores
from .errors import UsageError
from .records import Candidate, Done, NextToken, Step
from .sampling import GREEDY, Sampler


def prompt_ids(backend: Backend, prompt: str, chat: bool = False) -> list[int]:
    """Tokenize a prompt, refusing the ones the model can't take."""
    if not prompt or not prompt.strip():
        raise UsageError("the prompt is empty: give some text, e.g. tokenloop run \"Kubernetes pods are scheduled by the\"")
    ids = backend.encode(prompt, chat=chat)
    if not ids:
        raise UsageError("the prompt encodes to no tokens: give some text")
    if len(ids) >= backend.context_length:
        raise UsageError(
            f"the prompt is {len(ids)} tokens but {backend.model} takes at most {backend.context_length - 1} "
            "before the first new token: shorten it"
        )
    return ids


@dataclass(frozen=True)
class Distribution:
    """A distribution over a support, kept as its scores and their log-normaliser:
    logprob(i) = scores[i] - log_z and prob(i) = exp(logprob(i)).

    A step shows a handful of entries, so nothing the size of the vocabulary is built beyond the
    scores the model already gave: one pass for log_z, one for the top-k."""

    scores: torch.Tensor  # 1-D, over the support
    log_z: float
    values: np.ndarray = field(init=False, repr=False)  # the scores as numpy, for cheap reads of single entries

    def __post_init__(self):
        object.__setattr__(self, "values", sampling.scores_array(self.scores))

    @classmethod
    def raw(cls, scores: Scores) -> Distribution:
        """The raw distribution: softmax of the logits. A server's top-k already holds log-probabilities."""
        return cls(scores.logits, sampling.log_normalizer(scores.logits) if scores.ids is None else 0.0)

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

    def candidate(self, backend: Backend, scores: Scores, index: int) -> Candidate:
        """The entry at `index` of the support as a record with its token's text."""
        token_id = scores.token_id(index)
        logprob = self.logprob(index)
        return Candidate(token_id, backend.token_text(token_id), math.exp(logprob), logprob)


def candidates(backend: Backend, scores: Scores, dist: Distribution, k: int) -> list[Candidate]:
    """The k most likely entries of a distribution, as records with token text."""
    return [dist.candidate(backend, scores, index) for index in sampling.top_indices(dist.scores, k)]


def next_token(backend: Backend, ids: Sequence[int], k: int = 8) -> NextToken:
    """One step only: the next-token distribution after `ids` (nothing is picked)."""
    if k < 1:
        raise UsageError(f"--top-k must be at least 1, not {k}")
    start = time.perf_counter()
    scores = backend.forward(ids, None, top_k=k)
    top = candidates(backend, scores, Distribution.raw(scores), k)
    ms = (time.perf_counter() - start) * 1000
    return NextToken(backend.name, backend.model, list(ids), top, "raw", ms)


def one_step(backend: Backend, ids: Sequence[int], kv, sampler: Sampler, generator, show: int, number: int) -> Step:
    """One turn of the loop, without the append: the forward pass, the raw distribution, the pick."""
    t0 = time.perf_counter()
    scores = backend.forward(ids, kv, top_k=show)  # one forward pass: scores for the next token
    raw = Distribution.raw(scores)  # the raw distribution: a probability per token
    index, processed = sampling.pick(scores.logits, sampler, generator)  # greedy or sampled
    top = candidates(backend, scores, raw, show)
    shaped = None if processed is None else candidates(backend, scores, Distribution.of(processed), show)
    chosen = raw.candidate(backend, scores, index)
    ms = (time.perf_counter() - t0) * 1000
    return Step(number, len(ids), chosen, top, ms, kv is not None, scores.tokens_in, shaped, sampler.describe(), scores.extra)


def generate(
    backend: Backend,
    ids: Sequence[int],
    max_new: int = 32,
    sampler: Sampler = GREEDY,
    cache: bool = True,
    show: int = 8,
    seed: int | None = None,
) -> Iterator[Step | Done]:
    """The loop: yields a `Step` per generated token, then a `Done` saying why it stopped."""
    if max_new < 1:
        raise UsageError(f"--max-new must be at least 1, not {max_new}")
    if show < 1:
        raise UsageError(f"--show must be at least 1, not {show}")
    prompt, ids = list(ids), list(ids)
    kv = backend.new_cache() if cache else None
    generator = sampling.make_generator(seed)
    stop, start = "max_new", time.perf_counter()
    for step in range(1, max_new + 1):
        if len(ids) >= backend.context_length:
            stop = "context"
            break
        record = one_step(backend, ids, kv, sampler, generator, show, step)  # forward, distribution, pick
        yield record
        next_id = record.chosen.id
        ids.append(next_id)  # append, and go round again with the longer sequence
        if next_id in backend.eos_ids:
            stop = "eos"
            break
    seconds = time.perf_counter() - start
    new = ids[len(prompt):]
    yield Done(backend.decode(new), new, stop, len(new) / seconds if seconds > 0 else 0.0, seconds, prompt)
