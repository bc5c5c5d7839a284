"""Lesson 6's live steps (/api/live/sampling_…): each measured on the connected server, or on the
model in this process, as a job of this browser's session (`jobs.py`), kept under the step's
`live` key (`web/draws.py`). Steps 3 and 5 on a server answer their plan until the body consents."""

from __future__ import annotations

from fastapi import APIRouter

from .. import draws, jobs
from ..deps import Local, Server, State
from ..errors import BUSY
from ..schemas import ConsentIn
from .live import Asking

router = APIRouter(prefix="/api/live")


@router.post("/sampling_same_forward", responses=BUSY)
async def same_forward(asker: Asking, model: Local, server: Server) -> dict:
    """Step 1: the logits at T 0.2 and at T 1.5, compared, and one seeded draw at each."""
    key = asker.key("sampling_same_forward")
    return await jobs.measured(asker, key, lambda progress: draws.same_forward(model, server))


@router.post("/sampling_temperature", responses=BUSY)
async def temperature(asker: Asking, model: Local, server: Server) -> dict:
    """Step 2: the favourite's probability at T 0.5, 1 and 2 over the whole vocabulary."""
    key = asker.key("sampling_temperature")
    return await jobs.measured(asker, key, lambda progress: draws.temperature_prob(model, server))


@router.post("/sampling_outside_top", responses=BUSY)
async def outside_top(asker: Asking, model: Local, server: Server, state: State, body: ConsentIn | None = None) -> dict:
    """Step 3: seeded draws at T 1 counted outside the top 5 (on a server: its plan until consent)."""
    count = state.demo.get("sampling_draws", 50)
    plan = draws.plan_first(server, body, draws.served.outside_plan(count), "step 3")
    if plan is not None:
        return plan
    key = asker.key("sampling_outside_top")
    return await jobs.measured(asker, key, lambda progress: draws.outside_top(model, server, count, progress))


@router.post("/sampling_top_p", responses=BUSY)
async def top_p(asker: Asking, model: Local, server: Server) -> dict:
    """Step 4: the tokens top_p 0.5 keeps, renormalised."""
    key = asker.key("sampling_top_p")
    return await jobs.measured(asker, key, lambda progress: draws.top_p_kept(model, server))


@router.post("/sampling_batch", responses=BUSY)
async def batch(asker: Asking, model: Local, server: Server, state: State, body: ConsentIn | None = None) -> dict:
    """Step 5: the prompt greedy alone and inside a padded batch of 8, logits and paths compared
    (on a server: 8 identical greedy requests at once against one alone, its plan until consent)."""
    steps = state.demo.get("sampling_batch_steps", 8)
    plan = draws.plan_first(server, body, draws.served.batch_plan(steps), "step 5")
    if plan is not None:
        return plan
    key = asker.key("sampling_batch")
    return await jobs.measured(asker, key, lambda progress: draws.alone_vs_batch(model, server, steps))
