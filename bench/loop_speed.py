"""The loop's own cost, measured side by side in one run (issue: the foundation's speed targets).

1. Decode speed: tokenloop's KV-cache loop (with the per-step softmax + top-k + token text on)
   against transformers' `model.generate()` (greedy, no scores) on the same model, in the same
   process, for the same tokens. Runs are interleaved and repeated; the median is reported.
2. The instruments alone: softmax + top-k + token text per step, as a share of a step.
3. Warm start: `python main.py` until the first distribution is printed, in a fresh process.

    .venv/bin/python bench/loop_speed.py [--tokens 48] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from fast_path import instruments_ms  # the same instruments measure as the fast-path bench (bench/ is on sys.path)

from tokenloop.backends.embedded import EmbeddedBackend
from tokenloop.loop import generate, prompt_ids
from tokenloop.records import Step

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Kubernetes pods are scheduled by the"


def hf_generate(backend, ids, n):
    with torch.inference_mode():
        out = backend.lm.generate(torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1)
    return out[0, len(ids) :].tolist()


def ours(backend, ids, n):
    return [r.chosen.id for r in generate(backend, ids, max_new=n) if isinstance(r, Step)]


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def warm_start_s():
    """Seconds from process start to the first step line of the demo (the model already converted)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--max-new", "1"], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    first = None
    for line in proc.stdout:
        if line.startswith("step 1"):
            first = time.perf_counter() - start
    proc.wait()
    return first


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    backend = EmbeddedBackend()
    backend.eos_ids = frozenset()  # same number of tokens on both sides
    ids = prompt_ids(backend, PROMPT)
    n = args.tokens
    hf_generate(backend, ids, 4), ours(backend, ids, 4)  # warm-up, not counted
    hf_times, our_times = [], []
    for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits both
        t, hf_ids = timed(hf_generate, backend, ids, n)
        hf_times.append(t)
        t, our_ids = timed(ours, backend, ids, n)
        our_times.append(t)
    assert hf_ids == our_ids, "the two loops picked different tokens"
    hf_tps, our_tps = n / statistics.median(hf_times), n / statistics.median(our_times)
    step_ms = 1000 * statistics.median(our_times) / n
    inst = instruments_ms(backend, ids)
    warm = warm_start_s()
    print(f"model.generate() greedy     : {hf_tps:6.1f} tokens/s  (median of {args.repeats}, {n} tokens)")
    print(f"tokenloop KV-cache loop     : {our_tps:6.1f} tokens/s  (softmax + top-8 + token text every step)")
    print(f"ratio tokenloop / generate  : {our_tps / hf_tps:6.3f}   (target >= 0.98)")
    print(f"same tokens                 : {hf_ids == our_ids}")
    print(
        f"instruments per step        : {inst:6.2f} ms = {100 * inst / step_ms:.2f}% of a {step_ms:.1f} ms step (target < 2%)"
    )
    print(f"warm start to first step    : {warm:6.2f} s  (python main.py, model already converted; target < 2.5 s)")


if __name__ == "__main__":
    main()
