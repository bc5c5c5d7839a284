"""Score mode: one teacher-forced pass over a whole text.

Generation sees one position at a time. Training sees text the other way: every position in a
single forward pass, each asked "how likely was the token that really came next?". This shows
that view: every token of a pasted text with its probability and rank under the model.
"""

from __future__ import annotations

import math
import time

import torch

from .. import sampling
from ..errors import UsageError


def can_score(backend) -> bool:
    """Scoring needs the logits of every position: a model running in this process, on any engine."""
    return backend is not None and backend.can_score


@torch.inference_mode()
def score(backend, text: str, max_tokens: int = 1024) -> dict:
    """Each token's probability and rank given the tokens before it, from one forward pass."""
    if backend is None:
        raise UsageError(
            "score mode needs a model running in this process: start `tokenloop lesson` on the embedded model, or with --url to keep the embedded model beside the server"
        )
    if not can_score(backend):
        raise UsageError(f"score mode needs a model running in this process; {backend.model} is behind a server")
    ids = backend.encode(text)
    if len(ids) < 2:
        raise UsageError("score mode needs at least two tokens of text: paste a sentence or more")
    if len(ids) > min(max_tokens, backend.context_length):
        raise UsageError(
            f"the text is {len(ids)} tokens; score mode takes at most {min(max_tokens, backend.context_length)}: shorten it"
        )
    t0 = time.perf_counter()
    logits = backend.all_logits(ids)  # all positions at once
    logprobs = sampling.log_distribution(logits[:-1])  # position i predicts token i + 1
    actual = torch.tensor(ids[1:])
    picked = logprobs.gather(1, actual[:, None])[:, 0]
    ranks = (logprobs > picked[:, None]).sum(dim=1) + 1  # 1 = the model's favourite
    best = logprobs.argmax(dim=1)
    ms = (time.perf_counter() - t0) * 1000
    tokens = [
        {"id": ids[0], "token": backend.token_text(ids[0]), "prob": None, "logprob": None, "rank": None, "top": None}
    ]
    for i, token_id in enumerate(ids[1:]):
        top_id = int(best[i])
        tokens.append(
            {
                "id": token_id,
                "token": backend.token_text(token_id),
                "prob": math.exp(float(picked[i])),
                "logprob": float(picked[i]),
                "rank": int(ranks[i]),
                "top": {
                    "id": top_id,
                    "token": backend.token_text(top_id),
                    "prob": math.exp(float(logprobs[i, top_id])),
                },
            }
        )
    mean = float(picked.mean())
    return {"model": backend.model, "tokens": tokens, "mean_logprob": mean, "perplexity": math.exp(-mean), "ms": ms}
