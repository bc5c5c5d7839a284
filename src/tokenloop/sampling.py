"""Sampling as pure functions: logits -> raw distribution -> processed distribution -> pick.

Every backend, the web page and the tests use these. They take a 1-D tensor of scores over a
*support* (the whole vocabulary, or the top-k a server returned) and never touch global state:
randomness comes only from the `torch.Generator` passed in.

Scores come as a torch tensor or, from the onnxruntime engine, a numpy array. A greedy step
(the log-normaliser, argmax, the top few) reads them with numpy alone, so a run that never
samples never imports torch; sampling turns them into a tensor that shares their memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import UsageError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Sampler:
    """How the next token is picked. temperature 0 means greedy (argmax)."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self):
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise UsageError(f"--temperature must be 0 (greedy) or more, not {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"--top-k must be at least 1, not {self.top_k}")
        if self.top_p is not None and not (0 < self.top_p <= 1):
            raise UsageError(f"--top-p must be in (0, 1], not {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def describe(self) -> str:
        if self.greedy:
            return "greedy"
        parts = [f"T={self.temperature:g}"]
        if self.top_k is not None:
            parts.append(f"top_k={self.top_k}")
        if self.top_p is not None:
            parts.append(f"top_p={self.top_p:g}")
        return " ".join(parts)


GREEDY = Sampler()


def as_tensor(scores) -> torch.Tensor:
    """The scores as a torch tensor: a numpy array (the onnxruntime engine's) is wrapped, not copied."""
    if isinstance(scores, np.ndarray):
        import torch

        return torch.from_numpy(scores)
    return scores


def log_distribution(logits: torch.Tensor) -> torch.Tensor:
    """Raw distribution as log-probabilities: log-softmax of the logits, in float32."""
    import torch

    return torch.log_softmax(as_tensor(logits).float(), dim=-1)


def log_normalizer(logits: torch.Tensor) -> float:
    """log Σ exp(logits). The raw distribution's log-probabilities are the logits minus this one
    number, so a step can report the few probabilities it shows without a vocabulary-sized softmax."""
    x = scores_array(logits)
    top = float(x.max())
    if not math.isfinite(top):
        return top  # all -inf (nothing possible) or a NaN: nothing to normalise
    shifted = np.subtract(x, top, dtype=np.float32)  # shifted by the largest score, so exp can't overflow
    return top + math.log(float(np.exp(shifted, out=shifted).sum()))


def distribution(logits: torch.Tensor) -> torch.Tensor:
    """Raw distribution: softmax of the logits, a probability for every token of the support."""
    import torch

    return torch.softmax(as_tensor(logits).float(), dim=-1)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide by the temperature: below 1 sharpens, above 1 flattens."""
    return as_tensor(logits).float() / max(temperature, 1e-5)


def keep_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k highest scores, set the rest to -inf."""
    import torch

    if k >= logits.numel():
        return logits
    kth = torch.topk(logits, k).values[-1]
    return logits.masked_fill(logits < kth, float("-inf"))


def keep_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of highest-probability tokens whose mass reaches p (nucleus)."""
    import torch

    if p >= 1:
        return logits
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = torch.sort(probs, descending=True)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    drop_sorted = mass_before >= p  # the mass before this token already reached p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def process(logits: torch.Tensor, sampler: Sampler) -> torch.Tensor:
    """Processed distribution: temperature, then top-k, then top-p, renormalised."""
    import torch

    scores = apply_temperature(logits, sampler.temperature)
    if sampler.top_k is not None:
        scores = keep_top_k(scores, sampler.top_k)
    if sampler.top_p is not None:
        scores = keep_top_p(scores, sampler.top_p)
    return torch.softmax(scores, dim=-1)


def pick(
    logits: torch.Tensor, sampler: Sampler, generator: torch.Generator | None = None
) -> tuple[int, torch.Tensor | None]:
    """Pick an index of the support. Returns (index, processed distribution or None if greedy)."""
    if sampler.greedy:
        return int(scores_array(logits).argmax()), None  # the first of the highest, as torch.argmax
    import torch

    probs = process(logits, sampler)
    return int(torch.multinomial(probs, 1, generator=generator)), probs


def top_indices(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the k highest scores, highest first, the lower index first among equals
    (scores or probabilities: the order is the same).

    Only scores near the highest can be among the top k, so one comparison pass finds those and
    only they are sorted: a few times cheaper than torch.topk over a whole vocabulary."""
    x = scores_array(scores)
    k = min(k, x.size)
    top = float(x.max()) if x.size else math.nan
    margin = 4.0
    while math.isfinite(top) and margin < 1e6:
        near = np.flatnonzero(x >= top - margin)
        if near.size >= k:
            values = x[near]
            if near.size > 4 * k:  # keep the k largest before sorting (linear time)
                keep = np.sort(np.argpartition(-values, k - 1)[:k])  # back in index order, for the ties
                near, values = near[keep], values[keep]
            return near[np.argsort(-values, kind="stable")[:k]].tolist()
        margin *= 8  # too few that close to the top: look further down
    import torch

    return torch.topk(as_tensor(scores), k).indices.tolist()  # NaNs, or fewer than k finite scores


def scores_array(scores: torch.Tensor) -> np.ndarray:
    """A 1-D float32 view of the scores for numpy: on a vector of one vocabulary, numpy's single
    pass costs a few microseconds where a torch call costs tens (dispatch, and threads that meet)."""
    if isinstance(scores, np.ndarray):
        return scores.astype(np.float32, copy=False)
    return scores.detach().float().numpy()


def make_generator(seed: int | None) -> torch.Generator | None:
    """A seeded generator makes sampled runs reproducible; None draws from torch's default."""
    if seed is None:
        return None
    import torch

    return torch.Generator().manual_seed(seed)
