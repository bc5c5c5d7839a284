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

import time
from typing import Iterator, Sequence

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


def candidates(backend: Backend, scores: Scores, probs: torch.Tensor, logprobs: torch.Tensor, k: int) -> list[Candidate]:
    """The k most likely entries of a distribution, as records with token text."""
    indices, values = sampling.top(probs, k)
    out = []
    for index, prob in zip(indices, values):
        token_id = scores.token_id(index)
        out.append(Candidate(token_id, backend.token_text(token_id), prob, float(logprobs[index])))
    return out


def raw_distribution(scores: Scores) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs, logprobs) of the raw distribution. A server's top-k already holds log-probabilities."""
    logprobs = sampling.log_distribution(scores.logits) if scores.ids is None else scores.logits.float()
    return logprobs.exp(), logprobs


def next_token(backend: Backend, ids: Sequence[int], k: int = 8) -> NextToken:
    """One step only: the next-token distribution after `ids` (nothing is picked)."""
    if k < 1:
        raise UsageError(f"--top-k must be at least 1, not {k}")
    start = time.perf_counter()
    scores = backend.forward(ids, None, top_k=k)
    probs, logprobs = raw_distribution(scores)
    top = candidates(backend, scores, probs, logprobs, k)
    ms = (time.perf_counter() - start) * 1000
    return NextToken(backend.name, backend.model, list(ids), top, "raw", ms)


def one_step(backend: Backend, ids: Sequence[int], kv, sampler: Sampler, generator, show: int, number: int) -> Step:
    """One turn of the loop, without the append: the forward pass, the raw distribution, the pick."""
    t0 = time.perf_counter()
    scores = backend.forward(ids, kv, top_k=show)  # one forward pass: scores for the next token
    probs, logprobs = raw_distribution(scores)  # the raw distribution: a probability per token
    index, processed = sampling.pick(scores.logits, sampler, generator)  # greedy or sampled
    next_id = scores.token_id(index)
    top = candidates(backend, scores, probs, logprobs, show)
    shaped = None if processed is None else candidates(backend, scores, processed, processed.log(), show)
    chosen = Candidate(next_id, backend.token_text(next_id), float(probs[index]), float(logprobs[index]))
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
