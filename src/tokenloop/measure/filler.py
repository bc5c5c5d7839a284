"""The filler text: real sentences, repeated to any length, so a measurement feeds the model
ordinary tokens rather than padding. Every measurement that needs "a prompt of n tokens" takes it
from here."""

from __future__ import annotations

# Real text, repeated to the length needed: the model sees ordinary tokens, not padding.
TEXT = (
    "Kubernetes schedules pods onto nodes. The scheduler filters the nodes that can run a pod, "
    "scores the ones left, and binds the pod to the best. A language model works one token at a "
    "time: it reads the whole sequence, scores every token in its vocabulary, picks one, appends "
    "it and starts again. "
)


def token_ids(backend, n: int) -> list[int]:
    ids = backend.encode(TEXT)
    return (ids * (n // len(ids) + 1))[:n]
