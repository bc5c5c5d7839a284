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

import itertools
import time
from collections.abc import Iterator, Sequence

from . import sampling
from .backends import Backend
from .errors import UsageError
from .records import Done, NextToken, Step
from .sampling import GREEDY, Sampler
from .scores import Distribution, candidates


def prompt_ids(backend: Backend, prompt: str, chat: bool = False) -> list[int]:
    """Tokenize a prompt, refusing the ones the model can't take."""
    if not prompt or not prompt.strip():
        raise UsageError(
            'the prompt is empty: give some text, e.g. tokenloop run "Kubernetes pods are scheduled by the"'
        )
    ids = backend.encode(prompt, chat=chat)
    if not ids:
        raise UsageError("the prompt encodes to no tokens: give some text")
    if len(ids) >= backend.context_length:
        raise UsageError(
            f"the prompt is {len(ids)} tokens but {backend.model} takes at most {backend.context_length - 1} "
            "before the first new token: shorten it"
        )
    return ids


def next_token(backend: Backend, ids: Sequence[int], k: int = 8) -> NextToken:
    """One step only: the next-token distribution after `ids` (nothing is picked)."""
    if k < 1:
        raise UsageError(f"--top-k must be at least 1, not {k}")
    start = time.perf_counter()
    scores = backend.forward(ids, None, top_k=k)
    top = candidates(backend, scores, Distribution.raw(scores), k)
    ms = (time.perf_counter() - start) * 1000
    return NextToken(
        backend=backend.name, model=backend.model, prompt_ids=list(ids), top=top, distribution="raw", ms=ms
    )


def one_step(backend: Backend, ids: Sequence[int], kv, sampler: Sampler, generator, show: int, number: int) -> Step:
    """One turn of the loop, without the append: the forward pass, the raw distribution, the pick."""
    t0 = time.perf_counter()
    scores = backend.forward(ids, kv, top_k=show)  # one forward pass: scores for the next token
    raw = Distribution.raw(scores)  # the raw distribution: a probability per token
    index, processed = sampling.pick(scores.logits, sampler, generator)  # greedy or sampled
    top = candidates(backend, scores, raw, show)
    shaped = None if processed is None else candidates(backend, scores, Distribution.of(processed), show)
    chosen = raw.candidate(backend, scores, index)
    label = sampler.describe()
    if not backend.full_vocab and not sampler.greedy:  # sampled over what the server returned, not the vocabulary
        label += f" over the server's top-{len(scores.logits)}, renormalised"
    ms = (time.perf_counter() - t0) * 1000
    return Step(
        step=number,
        position=len(ids),
        chosen=chosen,
        top=top,
        ms=ms,
        cache=kv is not None,
        tokens_in=scores.tokens_in,
        processed=shaped,
        sampler=label,
        extra=scores.extra,
    )


def sampler_picks(
    backend: Backend, ids: list[int], kv, sampler: Sampler, generator, *, seed, show, first, max_new
) -> Iterator[Step]:
    """tokenloop's own picker: one forward pass per step, the pick made here by the sampler.
    (A server backend may bring its own picker instead: the server samples, or streams.)"""
    for number in itertools.count(first):
        yield one_step(backend, ids, kv, sampler, generator, show, number)


def generate(
    backend: Backend,
    ids: Sequence[int],
    max_new: int = 32,
    sampler: Sampler = GREEDY,
    cache: bool = True,
    show: int = 8,
    seed: int | None = None,
    *,
    kv=None,
    generator=None,
    first: int = 1,
    limit: int | None = None,
    stop_ids: frozenset[int] | None = None,
) -> Iterator[Step | Done]:
    """The loop: yields a `Step` per generated token, then a `Done` saying why it stopped.

    `kv`, `generator` and `first` continue a run that paused (the lab): its cache, its random
    stream and the number of its next step. `limit` caps the sequence below the context.
    `stop_ids` are the tokens that end the run: the model's end tokens unless a caller says
    otherwise (a server's `ignore_eos` request gives none)."""
    if max_new < 1:
        raise UsageError(f"--max-new must be at least 1, not {max_new}")
    if show < 1:
        raise UsageError(f"--show must be at least 1, not {show}")
    prompt, ids = list(ids), list(ids)
    kv = kv if kv is not None else (backend.new_cache() if cache else None)
    generator = generator if generator is not None else sampling.make_generator(seed)
    limit = min(limit or backend.context_length, backend.context_length)

    def ends(token: int) -> bool:  # read live: a server backend learns its end tokens as the run goes
        return token in (backend.eos_ids if stop_ids is None else stop_ids)

    picks = (backend.picker or sampler_picks)(
        backend, ids, kv, sampler, generator, seed=seed, show=show, first=first, max_new=max_new
    )
    stop, start = "max_new", time.perf_counter()
    try:
        while len(ids) - len(prompt) < max_new:
            if len(ids) >= limit:
                stop = "context"
                break
            record = next(picks, None)  # forward, distribution, pick
            if record is None:  # the server ended the run itself (a stream that finished)
                stop = "eos" if ids[len(prompt) :] and ends(ids[-1]) else "context"
                break
            yield record
            ids.append(record.chosen.id)  # append, and go round again with the longer sequence
            if ends(record.chosen.id):
                stop = "eos"
                break
    finally:
        picks.close()  # a stream stops here, even when the reader stopped early
    yield finish(backend, prompt, ids[len(prompt) :], stop, time.perf_counter() - start)


def finish(backend: Backend, prompt: Sequence[int], new: Sequence[int], stop: str, seconds: float) -> Done:
    """The record that ends a run: the new text and why it stopped."""
    new = list(new)
    return Done(
        text=backend.decode(new),
        ids=new,
        stop=stop,
        tokens_per_s=len(new) / seconds if seconds > 0 else 0.0,
        seconds=seconds,
        prompt_ids=list(prompt),
    )
