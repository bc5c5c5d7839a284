"""Lesson 2's live steps (/api/live/token_…): each counted by the connected server's tokenizer or
the embedded model's, as a job of this browser's session (`jobs.py`), kept under the step's `live`
key (`web/live_tokens.py`)."""

from __future__ import annotations

from fastapi import APIRouter

from .. import jobs, live_tokens
from ..deps import Local, Server
from ..errors import BUSY
from .live import Asking

router = APIRouter(prefix="/api/live")


@router.post("/token_pieces", responses=BUSY)
async def pieces(asker: Asking, server: Server, model: Local) -> dict:
    """Step 1: the prompt's pieces and their ids."""
    return await jobs.measured(asker, asker.key("token_pieces"), lambda progress: live_tokens.pieces(server, model))


@router.post("/chat_template", responses=BUSY)
async def chat(asker: Asking, server: Server, model: Local) -> dict:
    """Step 2: the prompt as one chat message, the template's tokens apart, checked by a real chat call."""
    return await jobs.measured(asker, asker.key("chat_template"), lambda progress: live_tokens.chat(server, model))


@router.post("/tokens_per_kchar", responses=BUSY)
async def per_kilochar(asker: Asking, server: Server, model: Local) -> dict:
    """Step 3: tokens per 1,000 characters of six kinds of text."""
    key = asker.key("tokens_per_kchar")
    return await jobs.measured(asker, key, lambda progress: live_tokens.per_kilochar(server, model))


@router.post("/context_limits", responses=BUSY)
async def limits(asker: Asking, server: Server, model: Local) -> dict:
    """Step 4: a request near the context limit with a large max_tokens, and one over it, sent for real."""
    return await jobs.measured(asker, asker.key("context_limits"), lambda progress: live_tokens.limits(server, model))


@router.post("/prompt_surprise", responses=BUSY)
async def surprise(asker: Asking, server: Server, model: Local) -> dict:
    """Step 5: each prompt piece's logprob and rank given the pieces before it."""
    key = asker.key("prompt_surprise")
    return await jobs.measured(asker, key, lambda progress: live_tokens.surprise(server, model))
