"""Lesson 3's live measurements (/api/live/…): prefill against decode. Each POST is a job of
this browser's session (`web/jobs.py`), kept under the step's `live:` key, measured by
`web/live_prefill.py`."""

from __future__ import annotations

from fastapi import APIRouter

from ...lessons import content
from .. import jobs, live_prefill
from ..deps import Local, Server, State
from ..errors import BUSY
from .live import Asking

router = APIRouter(prefix="/api/live")


@router.post("/prefill_phases", responses=BUSY)
async def phases(asker: Asking, server: Server, model: Local, state: State) -> dict:
    """Step 1: TTFT (a fresh prompt's prefill) and ITL (one decode step) at several prompt lengths."""
    return await jobs.measured(
        asker, asker.key("prefill_phases"), lambda progress: live_prefill.phases(server, model, state.demo, progress)
    )


@router.post("/token_cost", responses=BUSY)
async def cost(asker: Asking, server: Server, model: Local, state: State) -> dict:
    """Step 2: a decode step ÷ the prefill's slope, from step 1's kept measurement (or a new one)."""

    def measure(progress):
        phased = asker.session.kept.get(asker.key("prefill_phases"))
        if phased is None:
            phased = live_prefill.phases(server, model, state.demo, progress)
            asker.session.kept[asker.key("prefill_phases")] = phased
        return live_prefill.token_cost(phased)

    return await jobs.measured(asker, asker.key("token_cost"), measure)


@router.post("/answer_vs_prompt", responses=BUSY)
async def answer(asker: Asking, server: Server, model: Local, state: State) -> dict:
    """Step 3: a long answer to a short prompt against a long prompt with a one-token answer."""
    prompt, steps = content.load("day03")["prompt"], state.demo["answer_steps"]
    return await jobs.measured(
        asker,
        asker.key("answer_vs_prompt"),
        lambda progress: live_prefill.answer_vs_prompt(server, model, prompt, state.demo, steps),
    )


@router.post("/prompt_positions", responses=BUSY)
async def positions(asker: Asking, server: Server, model: Local) -> dict:
    """Step 4: the prefill's prediction at every prompt position (vLLM's prompt_logprobs, or the
    embedded model's logits)."""
    prompt = content.load("day03")["prompt"]
    return await jobs.measured(
        asker, asker.key("prompt_positions"), lambda progress: live_prefill.positions(server, model, prompt)
    )


@router.post("/attention_memory", responses=BUSY)
async def attention(asker: Asking, model: Local, state: State) -> dict:
    """Step 5: one attention layer, naive against fused: peak memory and time, outputs compared."""
    return await jobs.measured(
        asker, asker.key("attention_memory"), lambda progress: live_prefill.attention(model, state.demo, progress)
    )


@router.post("/ttft_account", responses=BUSY)
async def ttft(asker: Asking, server: Server, model: Local, state: State) -> dict:
    """Step 6: where the time to first token went, by the server's own account of each request."""
    prompt = content.load("day03")["prompt"]
    return await jobs.measured(
        asker, asker.key("ttft_account"), lambda progress: live_prefill.ttft(server, model, prompt, state.demo)
    )
