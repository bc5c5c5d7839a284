"""The two ways a server can pick instead of tokenloop's sampler. Each is a picker for
`loop.generate`: given the live token list, it yields one `Step` per new token; the loop
appends, counts, stops and ends the run.

- `by_server` (--server-sample): one call per token, and the server samples its own pick.
- `streamed` (--stream): one request, `stream: true`; the server runs the whole loop and sends
  each token with its logprobs. A step's `ms` is the time since the previous token (the first
  includes the prefill). When the loop stops reading, the stream is closed.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator

from ...errors import ServerError
from ...records import Candidate, Step
from ...scores import Distribution, Scores, candidates
from . import kinds, shapes
from .client import Refused


def _records(
    backend, scores: Scores, chosen_id: int, chosen_logprob: float, show: int
) -> tuple[Candidate, list[Candidate]]:
    """(chosen, top) from a server's top-k, the same way the embedded loop makes them."""
    top = candidates(backend, scores, Distribution.raw(scores), show)
    prob = math.exp(chosen_logprob) if math.isfinite(chosen_logprob) else 0.0
    return Candidate(chosen_id, backend.token_text(chosen_id), prob, chosen_logprob), top


def by_server(backend, ids: list[int], kv, sampler, generator, *, seed, show, first, max_new) -> Iterator[Step]:
    """One call per token; the server samples with the given sampler and its pick is appended."""
    for number in itertools.count(first):
        t0 = time.perf_counter()
        answer = backend.complete(
            ids, show, sampler=sampler, seed=None if seed is None else seed + number, cache=kv is not None
        )
        if answer.server_pick is None or answer.position.chosen is None:
            raise ServerError("the server did not say which token it picked", number)
        chosen, top = _records(backend, answer.scores, answer.server_pick, answer.position.chosen.logprob, show)
        yield Step(
            step=number,
            position=len(ids),
            chosen=chosen,
            top=top,
            ms=(time.perf_counter() - t0) * 1000,
            cache=kv is not None,
            tokens_in=answer.scores.tokens_in,
            sampler=f"{sampler.describe()} by the server",
            extra=answer.scores.extra,
        )


def streamed(backend, ids: list[int], kv, sampler, generator, *, seed, show, first, max_new) -> Iterator[Step]:
    """One streamed request for up to `max_new` tokens; a `Step` per token as it arrives."""
    prompt_len = len(ids)
    sent = list(ids) if backend.sends_ids else backend.tokens.text_of(list(ids))
    k = min(show, backend.max_top_k) if backend.max_top_k else show
    backend.tokens.hold = backend.kind.interrupts
    try:
        for attempt in range(2):
            body = kinds.completion_body(
                backend.kind,
                backend.model,
                sent,
                k,
                max_tokens=max_new,
                sampler=None if sampler.greedy else sampler,
                seed=seed,
                stream=True,
            )
            try:
                yield from _stream_steps(backend, ids, prompt_len, body, sampler, show, first)
                return
            except Refused as refused:
                if attempt or len(ids) > prompt_len:
                    raise
                k = backend.check_refusal(refused, 1, k)  # over the logprobs cap: once more with the cap
    finally:
        backend.tokens.hold = False
        ids[prompt_len:] = [backend.tokens.resolve(i) for i in ids[prompt_len:]]  # placeholders, looked up now


def _stream_steps(
    backend, ids: list[int], prompt_len: int, body: dict, sampler, show: int, first: int
) -> Iterator[Step]:
    start = last = time.perf_counter()
    made = 0  # tokens received (the loop appends them to `ids` between our yields)
    finish = None
    label = f"{sampler.describe()} by the server, streamed"
    with backend.client.events(backend.caps.endpoint, body, step=lambda: first + made) as chunks:
        for chunk in chunks:
            finish = backend.finish_of(chunk) or finish
            positions = shapes.positions(backend.logprobs_of(chunk))
            for i, position in enumerate(positions):
                number = first + made
                if position.chosen is None or not position.top:
                    raise ServerError("the streamed token came without logprobs", number)
                now = time.perf_counter()
                top = position.top
                extra = {"mode": "stream", "sent": "ids" if backend.sends_ids else "text", "returned": len(top)}
                if made == 0:
                    extra["ttft_ms"] = (now - start) * 1000
                scores = backend.scores_of(top, prompt_len if made == 0 else 1, extra)
                chosen, cands = _records(
                    backend, scores, backend.tokens.id_of(position.chosen), position.chosen.logprob, show
                )
                if finish == "stop" and i == len(positions) - 1:
                    backend.eos_ids = backend.eos_ids | {chosen.id}  # the server stopped on it: an end token
                made += 1
                yield Step(
                    step=number,
                    position=prompt_len + made - 1,
                    chosen=chosen,
                    top=cands,
                    ms=(now - last) * 1000,
                    cache=True,
                    tokens_in=scores.tokens_in,
                    sampler=label,
                    extra=extra,
                )
                last = now
    # The stream is over and complete ([DONE] came). It ends a run when the server says why.
    if finish == "stop" and made:
        backend.eos_ids = backend.eos_ids | {ids[-1]}
    elif finish is None:
        raise ServerError(
            f"the stream ended after {made} tokens without a finish reason: the server may have cut it short",
            first + made,
        )
