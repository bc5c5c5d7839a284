"""The generation loop. It reads like the lesson's pseudo-code:

    ids = encode(prompt)
    repeat:
        scores = model(ids)          # one forward pass
        probs  = softmax(scores)     # a probability for every token
        next   = pick(probs)         # greedy or sampled
        ids.append(next)             # append and go again
        stop at the end token

`generate` yields one `Step` per token and a final `Done`; nothing prints from here. The bare
loop, ten lines with no cache, records or timing, is `generate_uncached` in
`model/from_scratch.py`; this one adds the KV cache, the records and the server's pickers.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import sampling
from .backends import Backend
from .backends.picker import Pick, Picker, ReadOnlyIds, Run
from .errors import UsageError
from .records import Done, NextToken, Step, Stop
from .sampling import GREEDY, Sampler
from .scores import Distribution, Scores, candidates

if TYPE_CHECKING:
    import torch

PREFILL_CHUNK = 256  # tokens of a long prompt per forward pass when a run can be stopped (`prefill`)


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


def given_ids(backend: Backend, ids: Sequence[int]) -> list[int]:
    """Token ids that came from outside (a client of the web app), each checked to be a token of
    the model: a whole number from 0 to the vocabulary's size (0 and up where a server keeps it)."""
    vocab = backend.vocab_size
    bad = next((i for i in ids if type(i) is not int or i < 0 or (vocab is not None and i >= vocab)), None)
    if bad is not None:
        size = f" of {vocab} tokens" if vocab is not None else ""
        raise UsageError(f"token id {bad!r} is outside {backend.model}'s vocabulary{size}: send ids it has")
    return list(ids)


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


@dataclass(frozen=True)
class Paused:
    """Where a paused run stands (the lab pauses between requests): what it goes on from."""

    cache: Any = None  # the backend's KV cache for the ids so far (None: the run keeps none)
    generator: torch.Generator | None = None  # the run's random stream (None: from the seed, or torch's default)
    step: int = 1  # the number of the run's next step


def step_record(
    backend: Backend,
    ids: Sequence[int],
    scores: Scores,
    raw: Distribution,
    index: int,
    processed: torch.Tensor | None,
    sampler: Sampler,
    show: int,
    number: int,
    cached: bool,
    started: float,
) -> Step:
    """One turn of the loop as a record: the pick and the top of the raw (and processed) distribution.
    Its `ms` runs from `started` (before the forward pass) to the record made."""
    top = candidates(backend, scores, raw, show)
    shaped = (
        None if processed is None else candidates(backend, scores, Distribution.of(processed), show, kept_only=True)
    )
    label = sampler.describe()
    if not backend.full_vocab and not sampler.greedy:  # sampled over what the server returned, not the vocabulary
        label += f" over the server's top-{len(scores.values)}, renormalised"
    chosen = raw.candidate(backend, scores, index)
    return Step(
        step=number,
        position=len(ids),
        chosen=chosen,
        top=top,
        ms=(time.perf_counter() - started) * 1000,
        cache=cached,
        tokens_in=scores.tokens_in,
        processed=shaped,
        sampler=label,
        extra=scores.extra,
    )


def generate(
    backend: Backend,
    ids: Sequence[int],
    max_new: int = 32,
    sampler: Sampler = GREEDY,
    cache: bool = True,
    show: int = 8,
    seed: int | None = None,
    *,
    resume: Paused | None = None,
    limit: int | None = None,
    stop_ids: frozenset[int] | None = None,
    go_on: Callable[[], bool] | None = None,
    picker: Picker | None = None,
) -> Iterator[Step | Done]:
    """The loop: yields a `Step` per generated token, then a `Done` saying why it stopped.

    `resume` continues a run that paused (the lab): its cache, its random stream and the number
    of its next step (then `cache` is not read). `limit` caps the sequence below the context.
    `stop_ids` are the tokens that end the run: the model's end tokens unless a caller says
    otherwise (a server's `ignore_eos` request gives none). A backend with a `picker` (a server
    that samples or streams), or a `picker` given for this run, picks instead of the sampler; the
    loop appends and stops all the same. `go_on` is asked before every forward pass, a long
    prompt's included (`prefill`); when it says no (a web client left, its time ran out) the run
    ends with stop "stopped"."""
    if max_new < 1:
        raise UsageError(f"--max-new must be at least 1, not {max_new}")
    if show < 1:
        raise UsageError(f"--show must be at least 1, not {show}")
    prompt, ids = tuple(ids), list(ids)
    resume = resume or Paused(backend.new_cache() if cache else None)
    kv = resume.cache
    generator = resume.generator if resume.generator is not None else sampling.make_generator(seed)
    limit = min(limit or backend.context_length, backend.context_length)

    def ends(token: int) -> bool:  # read live: a server backend learns its end tokens as the run goes
        return token in (backend.eos_ids if stop_ids is None else stop_ids)

    picker = picker or backend.picker  # None: tokenloop's sampler picks; else the server does (it sees ids read-only)
    run = Run(ReadOnlyIds(ids), len(prompt), sampler, seed, show, resume.step, max_new, kv is not None)
    picks = picker.steps(backend, run) if picker else None
    stop: Stop = "max_new"
    start = time.perf_counter()
    try:
        fresh = picks is None and kv is not None and resume.step == 1  # a long prompt can go in pieces
        going = go_on is None or not fresh or prefill(backend, ids, kv, go_on, PREFILL_CHUNK)
        for number in itertools.count(resume.step):
            if len(ids) - len(prompt) >= max_new:
                break
            if len(ids) >= limit:
                stop = "context"
                break
            if not going or (go_on is not None and not go_on()):
                stop = "stopped"
                break
            t0 = time.perf_counter()
            if picks is None:  # tokenloop's own sampler
                scores = backend.forward(ids, kv, top_k=show)  # one forward pass: scores for the next token
                raw = Distribution.raw(scores)  # the raw distribution: a probability per token
                index, processed = sampling.pick(scores.values, sampler, generator)  # greedy or sampled
                pick = Pick(
                    step_record(backend, ids, scores, raw, index, processed, sampler, show, number, kv is not None, t0)
                )
            else:  # the server picks (--server-sample), or streams the whole run (--stream)
                try:
                    pick = next(picks)
                except StopIteration as over:  # the server ended the run itself: the stream finished
                    stop = "eos" if len(ids) > len(prompt) and (over.value or ends(ids[-1])) else "context"
                    break
            yield pick.step
            ids.append(pick.step.chosen.id)  # append, and go round again with the longer sequence
            if pick.ends or ends(pick.step.chosen.id):  # stop at the end token
                stop = "eos"
                break
    finally:
        if picks is not None:
            picks.close()  # a stream stops here, even when the reader stopped early
    new = ids[len(prompt) :]
    yield finish(
        backend, prompt, picker.final_ids(backend, tuple(new)) if picker else new, stop, time.perf_counter() - start
    )


def prefill(backend: Backend, ids: Sequence[int], cache, go_on: Callable[[], bool], chunk: int) -> bool:
    """Fill a fresh KV cache with a long prompt `chunk` tokens a forward pass, asking `go_on`
    before each, and leave the last piece to the loop's first step. The model's lock is free
    between two pieces (another request gets a turn) and a stop comes within one piece, not
    after the whole prompt. False: `go_on` said stop."""
    for end in range(chunk, len(ids), chunk):
        if not go_on():
            return False
        backend.forward(ids[:end], cache, top_k=1)
    return True


def finish(backend: Backend, prompt: Sequence[int], new: Sequence[int], stop: Stop, seconds: float) -> Done:
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
