"""Lesson 8's live measurements (/api/live/prefix_…): pages and prefix caching. Each POST is a job
of this browser's session (`web/jobs.py`), kept under the step's `live:` key, measured by
`web/live_prefix.py`. Step 5 on a server answers with its plan until the page sends consent."""

from __future__ import annotations

from fastapi import APIRouter

from .. import draws, jobs, live_prefix
from ..deps import Local, Server, State
from ..errors import BUSY
from ..schemas import ConsentIn
from .live import Asking

router = APIRouter(prefix="/api/live")


async def measure(key: str, asker, server, model, state):
    return await jobs.measured(
        asker, asker.key(key), lambda progress: live_prefix.run(key, server, model, state.demo, progress)
    )


@router.post("/prefix_growth", responses=BUSY)
async def growth(asker: Asking, server: Server, model: Local, state: State) -> dict:
    """Step 1: one request alone, its KV blocks counted as it grows."""
    return await measure("prefix_growth", asker, server, model, state)


@router.post("/prefix_repeat", responses=BUSY)
async def repeat(asker: Asking, server: Server, model: Local, state: State) -> dict:
    """Step 2: the same prompt twice: TTFT, cached tokens, the prefix counters' delta."""
    return await measure("prefix_repeat", asker, server, model, state)


@router.post("/prefix_two_blocks", responses=BUSY)
async def two_blocks(asker: Asking, server: Server, model: Local, state: State) -> dict:
    """Step 3: a prompt of exactly two blocks, sent twice (and one of two blocks and a token)."""
    return await measure("prefix_two_blocks", asker, server, model, state)


@router.post("/prefix_one_word", responses=BUSY)
async def one_word(asker: Asking, server: Server, model: Local, state: State) -> dict:
    """Step 4: one token changed, first or near the end."""
    return await measure("prefix_one_word", asker, server, model, state)


@router.post("/prefix_survival", responses=BUSY)
async def survival(asker: Asking, server: Server, model: Local, state: State, body: ConsentIn | None = None) -> dict:
    """Step 5: the prompt re-sent after growing amounts of other traffic (on a server: its plan until consent)."""
    if server is not None:
        plan = draws.plan_first(server, body, live_prefix.survival_plan(server, state.demo), "step 5")
        if plan is not None:
            return plan
    return await measure("prefix_survival", asker, server, model, state)


@router.post("/prefix_side_channel", responses=BUSY)
async def side_channel(asker: Asking, server: Server, model: Local, state: State) -> dict:
    """Step 6 (security): can another tenant time your prompt? Without and with a salt per tenant."""
    return await measure("prefix_side_channel", asker, server, model, state)
