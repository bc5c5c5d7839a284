"""`tokenloop train`: a few training steps on a copy of the model, then before/after and the cost."""

from __future__ import annotations

import argparse
import shlex

from .common import byte_size, emit_json, number, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="training vs inference: teach a copy of the model a fact, and measure the cost",
        description="Train a copy of the model for a few AdamW steps on a text (teacher forcing: one forward "
        "scores every position), show the probe's next-token distribution before and after, and the "
        "measured cost of a training step next to an inference forward on the same tokens. "
        "The served model and the files on disk are never changed.",
    )
    p.add_argument(
        "--text", default=None, help="the text to learn (default: an invented fact about the tokenloop mascot)"
    )
    p.add_argument(
        "--probe",
        default=None,
        help="the start of the text to ask about; the token after it is the target "
        "(default: the text without its last word)",
    )
    p.add_argument("--steps", type=positive_int("--steps"), default=None, help="training steps (default 6)")
    p.add_argument("--lr", type=number("--lr"), default=None, help="AdamW learning rate (default 1e-4)")
    p.add_argument("--top-k", type=positive_int("--top-k"), default=8, help="candidates shown before/after (default 8)")
    p.add_argument("--save", metavar="DIR", help="write the trained model to a new folder that --model DIR loads")
    p.add_argument("--json", action="store_true", help="JSON lines: one per step, then the result object")
    # Training needs the weights themselves, so always the embedded backend (never a server's --url).
    p.add_argument(
        "--model",
        metavar="PATH",
        help="a local Hugging Face model folder or .gguf file (default: the embedded SmolLM2-135M-Instruct)",
    )
    p.set_defaults(func=cmd_train)


def cmd_train(args, console) -> int:
    from ..backends import backend_class
    from ..training import teach as training

    text = training.DEFAULT_TEXT if args.text is None else args.text
    steps = training.DEFAULT_STEPS if args.steps is None else args.steps
    lr = training.DEFAULT_LR if args.lr is None else args.lr
    training.check_numbers(steps, lr)  # bad values fail before the model loads
    training.check_save(args.save)
    training.check_text(text)
    backend = backend_class("embedded")(model=args.model)
    view = None if args.json else TrainView(console, backend, steps)
    for record in training.training(backend, text, args.probe, steps, lr, args.top_k, args.save):
        if args.json:
            emit_json(record.to_json())
        elif isinstance(record, training.TrainResult):
            view.result(record)
        else:
            view.step(record)
    return 0


def flops(n: float) -> str:
    return f"{n / 1e9:,.2f} GFLOP"


class TrainView:
    """Draws the steps as they come, then before/after side by side and the cost table."""

    def __init__(self, console, backend, steps: int):
        self.console, self.backend, self.steps = console, backend, steps
        self.progress = None
        self.started = False

    def start(self):
        self.started = True
        self.console.print(
            f"Training a copy of {self.backend.model} (AdamW, {self.steps} steps); the served model stays frozen.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.progress = Progress(
                TextColumn("training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("", total=self.steps)

    def step(self, s) -> None:
        if not self.started:
            self.start()
        line = (
            f"step {s.step:>3}  loss {s.loss:6.3f}  train step {s.ms:7.0f} ms (forward {s.forward_ms:.0f}, backward "
            f"{s.backward_ms:.0f}, AdamW {s.optimizer_ms:.0f})  inference forward {s.inference_ms:5.0f} ms  "
            f"P(target) {100 * s.target_prob:5.1f}%"
        )
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=f"loss {s.loss:.3f}")

    def result(self, r) -> None:
        from rich.markup import escape
        from rich.table import Table
        from rich.text import Text

        from ..terminal import percent, visible

        if self.progress is not None:
            self.progress.stop()
        out = self.console
        target = visible(r.target.token)
        out.print()
        out.print(
            Text.assemble(
                ("text  ", "dim"),
                repr(r.text),
                ("\nprobe ", "dim"),
                repr(r.probe),
                ("  → target token ", "dim"),
                (repr(target), "bold green"),
                (f" (id {r.target.id})", "dim"),
            )
        )
        table = Table(box=None, pad_edge=False, padding=(0, 4))
        table.add_column("before: the served model (raw)")
        table.add_column(f"after {r.steps} steps: trained copy (raw)")
        table.add_row(compact(r.before, r.target.id), compact(r.after, r.target.id))
        out.print(table)
        out.print(
            Text.assemble(
                ("P(", "bold"),
                (repr(target), "bold green"),
                (") ", "bold"),
                f"{percent(r.target_prob_before).strip()} (rank {r.target_rank_before}) → ",
                (f"{percent(r.target_prob_after).strip()} (rank {r.target_rank_after})", "bold green"),
                ("   loss ", "bold"),
                f"{r.losses[0]:.3f} → {r.losses[-1]:.3f}",
            )
        )
        out.print()
        self.cost(r.cost)
        out.print()
        disk = "unchanged" if r.disk_unchanged else "CHANGED"
        plain = {"markup": False, "highlight": False, "soft_wrap": True}
        out.print(f"weights on disk: {disk} (sha256 {r.checksum[:16]}… before and after, {r.folder})", **plain)
        out.print("served model: frozen; it answers under torch.inference_mode and never gets a gradient", **plain)
        if r.save_failed:
            out.print(f"[yellow]{escape(r.save_failed)}[/]; the numbers above stand")
        if r.saved:
            out.print(
                f"saved the trained copy to {r.saved}; try: tokenloop next {shlex.quote(r.probe)} --model {shlex.quote(r.saved)}",
                **plain,
            )

    def cost(self, c: dict) -> None:
        from rich.table import Table

        t, i, m = c["train_bytes"], c["inference_bytes"], c["measured_bytes"]
        self.console.print(
            f"cost on the same {c['tokens']} tokens · {c['params'] / 1e6:.1f}M parameters × {c['dtype_bytes']} bytes",
            style="bold",
            highlight=False,
        )
        table = Table(box=None, padding=(0, 2))
        for name, justify in (("", "left"), ("training step", "right"), ("inference forward", "right"), ("", "right")):
            table.add_column(name, justify=justify)
        table.add_row(
            "time (measured, median)",
            f"{c['train_step_ms']:,.0f} ms",
            f"{c['inference_forward_ms']:,.0f} ms",
            f"{c['ratio']:.1f}×",
        )
        table.add_row(
            "  forward/backward/AdamW",
            f"{c['train_forward_ms']:,.0f}/{c['train_backward_ms']:,.0f}/{c['train_optimizer_ms']:,.0f}",
            "",
            "",
        )
        table.add_row(
            "FLOPs: 6N·T vs 2N·T",
            flops(c["flops_train_step"]),
            flops(c["flops_inference_forward"]),
            f"{c['flops_train_step'] / c['flops_inference_forward']:.0f}×",
        )
        table.add_row("weights", byte_size(t["weights"]), byte_size(i["weights"]), "")
        table.add_row("gradients (1 per weight)", byte_size(t["gradients"]), "—", "")
        table.add_row("AdamW state (2 per weight)", byte_size(t["optimizer"]), "—", "")
        table.add_row("activations kept for backward", byte_size(t["activations"]), "—", "")
        table.add_row("KV cache", "—", byte_size(i["kv_cache"]), "")
        table.add_row("total", byte_size(t["total"]), byte_size(i["total"]), f"{t['total'] / i['total']:.1f}×")
        self.console.print(table)
        self.console.print(
            f"measured: gradients {byte_size(m['gradients'])}, AdamW state {byte_size(m['optimizer'])}, "
            f"activations {byte_size(m['activations'])}, KV cache {byte_size(m['kv_cache'])} (sums of the real tensors); "
            f"process RSS grew {byte_size(m['rss_growth'])} (psutil)",
            style="dim",
            highlight=False,
            soft_wrap=True,
        )


def compact(candidates, target_id: int, width: int = 12):
    """Short bars for two columns side by side; the target token is marked."""
    from rich.text import Text

    from ..charts import bar
    from ..terminal import percent, visible

    text = Text()
    pad = max(len(visible(c.token)) for c in candidates)
    for c in candidates:
        hit = c.id == target_id
        text.append("▶ " if hit else "  ", style="bold green")
        text.append(f"{visible(c.token):<{pad}} {percent(c.prob)} ", style="bold green" if hit else "")
        text.append(bar(c.prob, width), style="green" if hit else "blue")
        text.append("\n")
    other = max(0.0, 1.0 - sum(c.prob for c in candidates))
    text.append(f"  {'(other)':<{pad}} {percent(other)}", style="dim")
    return text
