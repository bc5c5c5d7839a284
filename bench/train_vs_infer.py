"""Training step vs inference forward on the embedded model, over texts of growing length.

For each length, a copy of the model takes a few AdamW steps on the text (the first step, which
also allocates the optimizer state, is not counted); right after each step one inference forward
runs over the same tokens. Median times, their ratio, the 6N:2N FLOP estimate, and the bytes
each side holds, side by side in one run.

    .venv/bin/python bench/train_vs_infer.py [--repeat 1 4 16] [--steps 3] [--threads N]
"""

from __future__ import annotations

import argparse

import torch

from tokenloop.backends.embedded import EmbeddedBackend
from tokenloop.training import teach


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, nargs="+", default=[1, 4, 16], help="copies of the default text (its length grows)"
    )
    parser.add_argument("--steps", type=int, default=3, help="training steps per length; the first is warm-up")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = EmbeddedBackend()
    print(f"{backend.model}, {torch.get_num_threads()} torch thread(s), AdamW, median of {args.steps - 1} warm step(s)")
    head = f"{'tokens':>6} {'train step':>11} {'inference':>10} {'ratio':>6} {'FLOPs 6N:2N':>11} {'train tok/s':>11} {'infer tok/s':>11} {'train bytes':>12} {'infer bytes':>12}"
    print(head)
    for k in args.repeat:
        text = " ".join([teach.DEFAULT_TEXT] * k)
        c = teach.train(backend, text, teach.DEFAULT_PROBE, steps=args.steps).cost
        tokens = c["tokens"]
        print(
            f"{tokens:>6} {c['train_step_ms']:>8,.0f} ms {c['inference_forward_ms']:>7,.0f} ms {c['ratio']:>5.1f}× "
            f"{c['flops_train_step'] / c['flops_inference_forward']:>10.0f}× "
            f"{tokens / c['train_step_ms'] * 1000:>11,.0f} {tokens / c['inference_forward_ms'] * 1000:>11,.0f} "
            f"{c['train_bytes']['total'] / 1e9:>9.2f} GB {c['inference_bytes']['total'] / 1e9:>9.2f} GB",
            flush=True,
        )


if __name__ == "__main__":
    main()
