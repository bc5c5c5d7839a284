"""The two ways a server can pick instead of tokenloop's sampler: pickers for `loop.generate`
(the contract, and what a picker may touch, is `backends/picker.py`). Each yields one `Step` per
new token; the loop appends, counts, stops and ends the run.

- `by_server` (--server-sample): one call per token, and the server samples its own pick.
- `streamed` (--stream): one request, `stream: true`; the server runs the whole loop and sends
  each token with its logprobs. A step's `ms` is the time since the previous token (the first
  includes the prefill). When the loop stops reading, the stream is closed.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Generator

from ...errors import ServerError
from ...records import Candidate, Step
from ...scores import Distribution, Scores, candidates
from ..picker import Pick, Run
from . import dialects, wire
from .client import Refused


def _records(
    backend, scores: Scores, chosen_id: int, chosen_logprob: float, show: int
) -> tuple[Candidate, list[Candidate]]:
    """(chosen, top) from a server's top-k, the same way the embedded loop makes them."""
    top = candidates(backend, scores, Distribution.raw(scores), show)
    prob = (
        math.exp(chosen_logprob) if math.isfinite(chosen_logprob) else 0.0 if chosen_logprob == -math.inf else math.nan
    )
    return Candidate(chosen_id, backend.token_text(chosen_id), prob, chosen_logprob), top


def processed(backend) -> bool:
    """The server reports its logprobs after its sampler (measured by the probe: vLLM's
    --logprobs-mode processed_logprobs)."""
    return backend.caps.distribution.startswith("processed")


class ByServer:
    """One call per token; the server samples with the given sampler and its pick is appended.

    On a server that reports processed logprobs, a sampled call's logprobs are the distribution
    after its sampler: they become the step's `processed`, and one greedy call more (the same
    forward, nothing applied to it) gives the raw `top` beside them."""

    def steps(self, backend, run: Run) -> Generator[Pick, None, bool]:
        sampler, show, seed = run.sampler, run.show, run.seed
        both = processed(backend) and not sampler.greedy
        for number in itertools.count(run.first):
            t0 = time.perf_counter()
            answer = backend.complete(
                run.ids, show, sampler=sampler, seed=None if seed is None else seed + number, cache=run.cached
            )
            if answer.server_pick is None or answer.position.chosen is None:
                raise ServerError("the server did not say which token it picked", number)
            shaped, label = None, f"{sampler.describe()} by the server"
            raw = answer
            if both:
                raw = backend.complete(run.ids, show, cache=run.cached)
                shaped = candidates(backend, answer.scores, Distribution.raw(answer.scores), show, kept_only=True)
                label += ", its processed logprobs"
            before = next((e.logprob for e in raw.position.top if backend.tokens.id_of(e) == answer.server_pick), None)
            chosen_logprob = answer.position.chosen.logprob if not both else math.nan if before is None else before
            chosen, top = _records(backend, raw.scores, answer.server_pick, chosen_logprob, show)
            step = Step(
                step=number,
                position=len(run.ids),
                chosen=chosen,
                top=top,
                ms=(time.perf_counter() - t0) * 1000,
                cache=run.cached,
                tokens_in=answer.scores.tokens_in,
                processed=shaped,
                sampler=label,
                extra=answer.scores.extra,
            )
            yield Pick(step)  # an end token the server stopped on, the backend learned in `complete`
        return False  # never reached: each call makes one token, and the loop stops asking

    def final_ids(self, backend, new: tuple[int, ...]) -> list[int]:
        return list(new)


class Streamed:
    """One streamed request for up to `max_new` tokens; a `Step` per token as it arrives."""

    def steps(self, backend, run: Run) -> Generator[Pick, None, bool]:
        sent = list(run.ids) if backend.sends_ids else backend.tokens.text_of(list(run.ids))
        k = min(run.show, backend.max_top_k) if backend.max_top_k else run.show
        backend.tokens.hold = backend.dialect.interrupts
        try:
            for attempt in range(2):
                body = dialects.completion_body(
                    backend.dialect,
                    backend.model,
                    sent,
                    k,
                    max_tokens=run.max_new,
                    sampler=None if run.sampler.greedy else run.sampler,
                    seed=run.seed,
                    stream=True,
                )
                try:
                    return (yield from _stream_steps(backend, run, body))
                except Refused as refused:
                    if attempt or len(run.ids) > run.prompt_length:
                        raise
                    k = backend.check_refusal(refused, 1, k)  # over the logprobs cap: once more with the cap
        finally:
            backend.tokens.hold = False
        return False

    def final_ids(self, backend, new: tuple[int, ...]) -> list[int]:
        """Placeholders handed out while the stream ran, looked up now that it is over."""
        return [backend.tokens.resolve(i) for i in new]


by_server = ByServer()
streamed = Streamed()


def _stream_steps(backend, run: Run, body: dict) -> Generator[Pick, None, bool]:
    """The stream's tokens as Picks; returns whether the server ended the run on the last one."""
    start = last = time.perf_counter()
    made = 0  # tokens received (the loop appends them to its ids between our yields)
    finish = None
    label = f"{run.sampler.describe()} by the server, streamed"
    with backend.client.events(backend.caps.endpoint, body, step=lambda: run.first + made) as chunks:
        for chunk in chunks:
            finish = backend.finish_of(chunk) or finish
            positions = wire.positions(backend.logprobs_of(chunk))
            for i, position in enumerate(positions):
                number = run.first + made
                if position.chosen is None or not position.top:
                    raise ServerError("the streamed token came without logprobs", number)
                now = time.perf_counter()
                top = position.top
                extra = {"mode": "stream", "sent": "ids" if backend.sends_ids else "text", "returned": len(top)}
                if made == 0:
                    extra["ttft_ms"] = (now - start) * 1000
                scores = backend.scores_of(top, run.prompt_length if made == 0 else 1, extra)
                chosen, cands = _records(
                    backend, scores, backend.tokens.id_of(position.chosen), position.chosen.logprob, show=run.show
                )
                made += 1
                step = Step(
                    step=number,
                    position=run.prompt_length + made - 1,
                    chosen=chosen,
                    top=cands,
                    ms=(now - last) * 1000,
                    cache=True,
                    tokens_in=scores.tokens_in,
                    sampler=label,
                    extra=extra,
                )
                yield Pick(step, ends=finish == "stop" and i == len(positions) - 1)  # the server stopped on it
                last = now
    # The stream is over and complete ([DONE] came). It ends a run when the server says why.
    if finish is None:
        raise ServerError(
            f"the stream ended after {made} tokens without a finish reason: the server may have cut it short",
            run.first + made,
        )
    return finish == "stop" and made > 0
