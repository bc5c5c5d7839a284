"""The lab's side-by-side view: the same prompt on the connected server and on the embedded model
beside it (`create_app(..., compare=...)`), each one's next-token distribution and a short greedy run."""

from __future__ import annotations

from ..errors import UsageError
from ..loop import generate, next_token, prompt_ids
from ..records import Done


def compare(backend, other, body) -> dict:
    if other is None:
        raise UsageError("nothing to compare with: start the app with --url to put a server beside the embedded model")
    return {"a": side(backend, body), "b": side(other, body)}


def side(backend, body) -> dict:
    """One backend's answer for the compare view: the distribution and a short greedy run."""
    ids = prompt_ids(backend, body.prompt, body.chat)
    out = next_token(backend, ids, body.top_k).to_json()
    done = [r for r in generate(backend, ids, body.max_new, show=1) if isinstance(r, Done)] if body.max_new else []
    out["text"] = done[0].text if done else ""
    return out
