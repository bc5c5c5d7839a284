"""Lesson 6 on the model in this process: one forward pass gives 49,152 logits, and every sampler
setting is a different way of drawing one token from them. Each function returns a JSON-ready dict.

The forward never sees the temperature: `same_forward` runs it once per temperature and compares
the logits; the rest run it once and apply `sampling.py`'s pure functions to the result.
"""

from __future__ import annotations

import time

import torch

from .. import sampling
from ..sampling import Sampler


def logits(backend, prompt: str) -> torch.Tensor:
    """The last position's logits over the whole vocabulary, one fresh forward pass (no cache)."""
    return sampling.as_tensor(backend.forward(backend.encode(prompt), None).values).float()


def entry(backend, index: int, p: float) -> dict:
    return {"id": index, "token": backend.token_text(index), "prob": p}


def top(backend, probs: torch.Tensor, k: int) -> list[dict]:
    return [entry(backend, i, float(probs[i])) for i in sampling.top_indices(probs, k)]


def same_forward(backend, prompt: str, temperatures=(0.2, 1.5), seed: int = 1, k: int = 5) -> dict:
    """Step 1: the forward run once per temperature; the logits compared; one seeded draw each."""
    runs, first = [], None
    for t in temperatures:
        x = logits(backend, prompt)  # the forward is handed the prompt only, never the temperature
        first = x if first is None else first
        raw = sampling.distribution(x)
        drawn, _ = sampling.pick(x, Sampler(t), sampling.make_generator(seed))
        runs.append({"temperature": t, "top": top(backend, raw, k), "drawn": entry(backend, drawn, float(raw[drawn]))})
        runs[-1]["max_abs_diff"] = float((x - first).abs().max())
    return {
        "prompt": prompt,
        "seed": seed,
        "runs": runs,
        "max_abs_diff": max(r["max_abs_diff"] for r in runs),
        "vocab_size": int(first.numel()),
    }


def temperature_prob(backend, prompt: str, temperatures=(0.5, 1.0, 2.0), k: int = 5) -> dict:
    """Step 2: softmax(logits / T) over the whole vocabulary, the favourite at T 1 followed."""
    x = logits(backend, prompt)
    favourite = sampling.top_indices(x, 1)[0]
    points = []
    for t in temperatures:
        probs = sampling.process(x, Sampler(t))
        top_k = sampling.top_indices(probs, k)
        points.append(
            {
                "temperature": t,
                "prob": float(probs[favourite]),
                "top_mass": float(probs[top_k].sum()),
                "top": top(backend, probs, k),
            }
        )
    return {
        "prompt": prompt,
        "token": backend.token_text(favourite),
        "id": favourite,
        "points": points,
        "vocab_size": int(x.numel()),
    }


def outside_top(backend, prompt: str, draws: int = 50, k: int = 5, temperature: float = 1.0) -> dict:
    """Step 3: `draws` draws at T 1, seeds 0..draws-1, counted outside the top k, beside 1 - top-k mass."""
    x = logits(backend, prompt)
    probs = sampling.process(x, Sampler(temperature))
    top_k = set(sampling.top_indices(probs, k))
    picks = [sampling.pick(x, Sampler(temperature), sampling.make_generator(seed))[0] for seed in range(draws)]
    outside = [p for p in picks if p not in top_k]
    rarest = min(picks, key=lambda i: float(probs[i]))
    mass = float(probs[sorted(top_k)].sum())
    return {
        "prompt": prompt,
        "draws": draws,
        "k": k,
        "temperature": temperature,
        "outside": len(outside),
        "outside_share": len(outside) / draws,
        "top_mass": mass,
        "expected_outside": 1 - mass,
        "top": top(backend, probs, k),
        "rarest": entry(backend, rarest, float(probs[rarest])),
        "seeds": f"0–{draws - 1}",
    }


def top_p_kept(backend, prompt: str, top_p: float = 0.5, temperature: float = 1.0, shown_at_most: int = 20) -> dict:
    """Step 4: the tokens top-p keeps (non-zero after the sampler) and their renormalised probabilities."""
    x = logits(backend, prompt)
    raw = sampling.process(x, Sampler(temperature))
    kept = sampling.process(x, Sampler(temperature, top_p=top_p))
    eligible = kept > 0
    count = int(eligible.sum())
    shown = sampling.top_indices(kept, min(count, shown_at_most))
    return {
        "prompt": prompt,
        "top_p": top_p,
        "temperature": temperature,
        "eligible": count,
        "vocab_size": int(x.numel()),
        "kept": [{**entry(backend, i, float(kept[i])), "raw": float(raw[i])} for i in shown],  # the likeliest
        "kept_raw_mass": float(raw[eligible].sum()),
    }


@torch.inference_mode()
def alone_vs_batch(backend, prompt: str, others: list[str], steps: int = 24) -> dict:
    """Step 5 without a server: greedy `steps` tokens for `prompt` alone, and as one row of a
    left-padded batch with `others`; the first step's logits compared, and the two greedy paths."""
    started = time.perf_counter()
    alone = _greedy_rows(backend, [prompt], steps)
    batched = _greedy_rows(backend, [prompt, *others], steps)
    a, b = alone["first_logits"][0], batched["first_logits"][0]
    path_a, path_b = alone["paths"][0], batched["paths"][0]
    diverge = next((i for i, (p, q) in enumerate(zip(path_a, path_b, strict=True)) if p != q), None)
    return {
        "prompt": prompt,
        "batch": 1 + len(others),
        "steps": steps,
        "max_abs_diff": float((a - b).abs().max()),
        "same_argmax": int(a.argmax()) == int(b.argmax()),
        "same_path": diverge is None,
        "first_divergence": diverge,
        "alone_text": backend.decode(path_a),
        "batched_text": backend.decode(path_b),
        "ms": (time.perf_counter() - started) * 1000,
    }


def _greedy_rows(backend, prompts: list[str], steps: int) -> dict:
    """Greedy continuation of each prompt, all rows in one left-padded batch, the whole sequence
    run at every step (no cache, so the only difference between runs is the batch around a row)."""
    rows = [backend.encode(p) for p in prompts]
    paths: list[list[int]] = [[] for _ in rows]
    first = None
    with backend.lock:
        for _ in range(steps):
            seqs = [r + p for r, p in zip(rows, paths, strict=True)]
            width = max(map(len, seqs))
            pad = 0
            ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs])
            mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
            position = (mask.cumsum(-1) - 1).clamp(min=0)
            out = backend.lm(ids, attention_mask=mask, position_ids=position, use_cache=False, logits_to_keep=1)
            last = out.logits[:, -1].float()
            first = last.clone() if first is None else first
            for path, row in zip(paths, last, strict=True):
                path.append(int(row.argmax()))
    return {"first_logits": first, "paths": paths}
