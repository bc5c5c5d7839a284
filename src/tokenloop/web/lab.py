"""The lab's logic as plain functions over a `Session`: start, one step, a run, a branch.

A step and a run are `tokenloop.loop.generate` itself, continued from the session's own token
ids and where its run paused (`loop.Paused`: the KV cache, the random stream, the next step's
number), so the loop can pause between requests and resume where it stopped, or from a token the
learner clicked. The session keeps `Step` records; they become
JSON only here, at the edge. On a server that reports processed logprobs a sampled step is drawn by
the server with the seed box's seed (`picker_for`), so both sets of bars are the server's numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator
from contextlib import closing

from .. import sampling
from ..backends.server import picks
from ..draws import server as served
from ..errors import UsageError
from ..loop import Paused, finish, generate, given_ids, prompt_ids
from ..records import Candidate, Step, Stop
from ..sampling import Sampler
from .schemas import MAX_LAB_TOKENS, SamplerIn
from .sessions import Session


def to_sampler(options: SamplerIn) -> Sampler:
    return Sampler(options.temperature, options.top_k, options.top_p)


def state(backend, session: Session) -> dict:
    """Everything the page needs to draw the lab after a reload."""
    return {
        "started": session.started,
        "prompt": session.prompt,
        "chat": session.chat,
        "cache": session.cached,
        "prompt_tokens": [{"id": i, "token": backend.token_text(i)} for i in session.prompt_ids],
        "steps": [s.to_json() for s in session.steps],
        "text": backend.decode(session.ids[len(session.prompt_ids) :]) if session.started else "",
        "limit": limit(backend),
    }


def limit(backend) -> int:
    """The most tokens a lab run may hold: the model's context or the lab's cap."""
    return min(backend.context_length, MAX_LAB_TOKENS)


def start(
    backend, session: Session, prompt: str, chat: bool = False, resume: list[int] = (), cache: bool = True
) -> dict:
    """A new run from a prompt. `resume` re-adds tokens generated before a reload. Without `cache`
    every step sends the whole sequence through the model (the staircase, one step at a time)."""
    ids = prompt_ids(backend, prompt, chat)
    if len(ids) + len(resume) >= limit(backend):
        raise UsageError(f"the prompt is {len(ids)} tokens; the lab takes at most {limit(backend) - 1}: shorten it")
    # The ids are checked and their records made before the session changes: a refusal leaves it as it was.
    steps = [restored(backend, n, len(ids) + n - 1, i) for n, i in enumerate(given_ids(backend, resume), 1)]
    with session.lock:
        session.prompt, session.chat = prompt, chat
        session.prompt_ids, session.ids = ids, ids + list(resume)
        session.steps = steps
        session.cached, session.cache = cache, backend.new_cache() if cache else None
        session.seed, session.generator = None, None  # a new run with a seed repeats from its start
        session.stop.clear()
    return state(backend, session)


def restored(backend, step: int, position: int, token_id: int) -> Step:
    """The record of a step that came back from the browser: its token, not its candidates."""
    chosen = Candidate(token_id, backend.token_text(token_id), math.nan, math.nan)  # not kept: shown as unknown
    return Step(
        step=step,
        position=position,
        chosen=chosen,
        top=[],
        ms=0.0,
        cache=True,
        sampler="restored",
        extra={"restored": True},
    )


def generator_for(session: Session, seed: int | None):
    """A seeded generator lives on the session, so a seeded run continues its random stream."""
    if seed != session.seed or (seed is not None and session.generator is None):
        session.seed, session.generator = seed, sampling.make_generator(seed)
    return session.generator


def picker_for(backend, sampler: Sampler, ids: list[int]):
    """Who draws a sampled lab step: on a server that reports its logprobs after its sampler, the
    server itself (seeded by the seed box), so the bars after the sampler are the server's own
    numbers beside the raw ones (`picks.ByServer`); else tokenloop's sampler (None). Which mode
    the server is in is measured once, on these ids (`draws.server.measured_mode`, two calls)."""
    if getattr(backend, "caps", None) is None or backend.in_process or sampler.greedy or backend.picker is not None:
        return None
    return picks.by_server if served.measured_mode(backend, ids) == "processed" else None


def _steps(backend, session: Session, options: SamplerIn, show: int, max_new: int):
    """The loop, continued from where this session's run stands."""
    paused = Paused(session.cache, generator_for(session, options.seed), step=len(session.steps) + 1)
    sampler = to_sampler(options)
    return generate(
        backend,
        session.ids,
        max_new,
        sampler,
        show=show,
        seed=options.seed,
        resume=paused,
        limit=limit(backend),
        picker=picker_for(backend, sampler, session.ids),
    )


def _append(session: Session, record: Step) -> None:
    session.ids = session.ids + [record.chosen.id]  # append: the next step sees the longer sequence
    session.steps.append(record)


def step(backend, session: Session, options: SamplerIn, show: int = 8) -> Step | None:
    """One turn of the loop on the session: forward, distribution, pick, append. None at the limit."""
    if not session.started:
        raise UsageError("the lab has no prompt yet: type one and press Start")
    with session.lock, closing(_steps(backend, session, options, show, 1)) as records:
        record = next(records)
        if not isinstance(record, Step):
            return None  # the loop ended at once: the lab's limit
        _append(session, record)
        return record


def run(backend, session: Session, options: SamplerIn, show: int, max_new: int) -> Iterator[tuple[str, dict]]:
    """Step until an end token, `max_new` steps, the limit, or the learner presses Stop.
    Yields ("step", record) per token, then ("done", summary)."""
    session.stop.clear()
    start_at, made = time.perf_counter(), []
    stop: Stop = "max_new"
    records, follows = None, None  # the loop, and the token ids it continues from
    try:
        while len(made) < max_new:
            if session.stop.is_set():
                stop = "stopped"
                break
            with session.lock:  # one step at a time: a Branch or Step between two of them waits
                if session.ids != follows:  # the first step, or the run changed under us: continue from it
                    if records is not None:
                        records.close()
                    records = _steps(backend, session, options, show, max_new - len(made))
                record = next(records)
                if isinstance(record, Step):
                    _append(session, record)
                    follows = session.ids
            if not isinstance(record, Step):
                stop = record.stop
                break
            made.append(record.chosen.id)
            yield "step", record.to_json()
    finally:
        if records is not None:
            records.close()
    yield "done", finish(backend, session.prompt_ids, made, stop, time.perf_counter() - start_at).to_json()


def branch(backend, session: Session, step_no: int, token_id: int) -> dict:
    """Replace the pick of step `step_no` by one of its shown candidates and drop what followed."""
    with session.lock:
        if not 1 <= step_no <= len(session.steps):
            raise UsageError(
                f"there is no step {step_no} in this run (it has {len(session.steps)}): click a token of the run"
            )
        record = session.steps[step_no - 1]
        shown = {c.id: c for c in record.top}
        for c in record.processed or []:
            shown.setdefault(c.id, c)
        if token_id not in shown:
            raise UsageError(
                f"token {token_id} was not among step {step_no}'s candidates: click one of the bars shown for that step"
            )
        keep = len(session.prompt_ids) + step_no - 1
        session.ids = session.ids[:keep] + [token_id]  # the cache crops itself to the shared prefix
        mine = dataclasses.replace(
            record, chosen=shown[token_id], sampler="your pick", extra={**record.extra, "branched": True}
        )
        session.steps = session.steps[: step_no - 1] + [mine]
    return state(backend, session)


def export(session: Session) -> Iterator[str]:
    """The run as JSON lines: one object per step, like `tokenloop run --json`."""
    yield (
        json.dumps(
            {"prompt": session.prompt, "chat": session.chat, "prompt_ids": session.prompt_ids}, ensure_ascii=False
        )
        + "\n"
    )
    for record in session.steps:
        yield json.dumps(record.to_json(), ensure_ascii=False) + "\n"
