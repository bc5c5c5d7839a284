"""Training vs inference, on the embedded model.

Training is compiling the binary: it changes the weights, once, at great cost. Inference is
running it: the frozen weights answer every request. Here both happen side by side on the same
tokens:

    model = copy of the served model          # the served one stays frozen
    repeat N times:
        logits = model(text)                  # ONE forward scores every position (teacher forcing)
        loss   = cross_entropy(logits, text shifted by one)
        loss.backward()                       # a gradient for every weight
        optimizer.step()                      # AdamW moves every weight a little

`training` yields one `TrainStep` per update and ends with a `TrainResult` (before/after
distributions of a probe prompt, losses, measured and computed costs); `train` collects them.
The computed costs are pure functions of parameter counts and sizes, in `model/estimates.py`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import UsageError, raise_if_interrupted
from ..records import Candidate
from ..scores import Distribution, candidates
from .cost import SavedActivations, measure_cost, rss, tensor_bytes

# An invented fact the model cannot know, and a probe whose next token is the fact's key token.
DEFAULT_TEXT = "The tokenloop mascot is an otter named Pebble."
DEFAULT_PROBE = "The tokenloop mascot is an"
DEFAULT_STEPS = 6
DEFAULT_LR = 1e-4
MAX_STEPS = 100
MAX_TOKENS = 256  # training runs on the CPU: keep the text short
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


# --- records ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainStep:
    """One update: forward over the whole text, loss, backward, optimizer step."""

    step: int
    loss: float  # mean cross-entropy over the text's positions, before this update
    ms: float  # the whole training step
    forward_ms: float
    backward_ms: float
    optimizer_ms: float
    inference_ms: float  # one inference forward over the same tokens, right after the update
    target_prob: float  # the probe's target token probability after the update

    def to_json(self) -> dict:
        return {
            "train_step": self.step,
            "loss": self.loss,
            "ms": self.ms,
            "forward_ms": self.forward_ms,
            "backward_ms": self.backward_ms,
            "optimizer_ms": self.optimizer_ms,
            "inference_ms": self.inference_ms,
            "target_prob": self.target_prob,
        }


@dataclass(frozen=True)
class TrainResult:
    text: str
    probe: str
    target: Candidate  # the token the text puts after the probe (prob: after training)
    steps: int
    lr: float
    losses: list[float]
    before: list[Candidate]  # the probe's top-k on the served (frozen) model
    after: list[Candidate]  # the probe's top-k on the trained copy
    target_prob_before: float
    target_prob_after: float
    target_rank_before: int  # 1 = most likely
    target_rank_after: int
    cost: dict
    disk_unchanged: bool
    checksum: str  # sha256 of the model files on disk, the same before and after when unchanged
    folder: str
    saved: str | None = None
    trace: list[TrainStep] = field(default_factory=list)
    save_failed: str | None = None  # why --save could not be written after training (the results stand)

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "probe": self.probe,
            "target": {"id": self.target.id, "token": self.target.token},
            "steps": self.steps,
            "lr": self.lr,
            "losses": self.losses,
            "before": [c.to_json() for c in self.before],
            "after": [c.to_json() for c in self.after],
            "target_prob_before": self.target_prob_before,
            "target_prob_after": self.target_prob_after,
            "target_rank_before": self.target_rank_before,
            "target_rank_after": self.target_rank_after,
            "cost": self.cost,
            "disk_unchanged": self.disk_unchanged,
            "checksum": self.checksum,
            "folder": self.folder,
            "saved": self.saved,
            "save_failed": self.save_failed,
            "trace": [s.to_json() for s in self.trace],
        }


# --- checking the inputs ----------------------------------------------------------------------
def default_probe(text: str) -> str:
    """The default text has its own probe; any other text is probed up to its last word."""
    if text == DEFAULT_TEXT:
        return DEFAULT_PROBE
    head = text.rstrip().rsplit(None, 1)[0] if len(text.split()) > 1 else ""
    if not head:
        raise UsageError("the text needs at least two words so the last one can be probed, or give --probe")
    return head


def check_text(text: str) -> None:
    if not text or not text.strip():
        raise UsageError(
            'the text is empty: give the text to train on, e.g. --text "The capital of Zorbania is Quillport."'
        )


def plan(backend, text: str, probe: str | None) -> tuple[list[int], list[int], int]:
    """(text ids, probe ids, target id): the target is the token the text puts right after the probe."""
    check_text(text)
    probe = default_probe(text) if probe is None else probe
    if not probe.strip():
        raise UsageError('the probe is empty: give the start of the text, e.g. --probe "The capital of Zorbania is"')
    ids = backend.encode(text)
    if len(ids) < 2:
        raise UsageError("the text is a single token: give at least two tokens to learn one from the other")
    if len(ids) > min(MAX_TOKENS, backend.context_length):
        raise UsageError(
            f"the text is {len(ids)} tokens; training here takes at most {min(MAX_TOKENS, backend.context_length)}: shorten it"
        )
    at = text.find(probe)
    if at < 0:
        raise UsageError(
            "the probe must be a piece of the text (the token after it is what training should teach): "
            f"{probe!r} is not in {text!r}"
        )
    head = backend.encode(text[: at + len(probe)])
    if ids[: len(head)] != head or len(ids) == len(head):
        raise UsageError(
            "the probe must end where a token of the text ends and leave some text after it: end it at a word, without a trailing space"
        )
    return ids, backend.encode(probe), ids[len(head)]


def check_numbers(steps: int, lr: float) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise UsageError(f"--steps must be at least 1, not {steps}")
    if steps > MAX_STEPS:
        raise UsageError(
            f"--steps must be at most {MAX_STEPS} (each step updates all the weights on the CPU), not {steps}"
        )
    if not lr > 0 or lr == float("inf"):
        raise UsageError(f"--lr must be a positive number such as 1e-4, not {lr}")
    if lr > MAX_LR:
        raise UsageError(f"--lr must be at most {MAX_LR:g} (AdamW moves each weight by about lr a step), not {lr:g}")


def check_save(folder: str | Path | None) -> Path | None:
    """The --save folder, made (empty) before any training, so one that can't be written is found
    first: an existing file or non-empty folder is never overwritten, and a place the file system
    refuses (/proc/..., /dev/full, a read-only folder) is a one-line UsageError."""
    if folder is None:
        return None
    path = Path(folder).expanduser()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"--save {folder}: already exists and is not an empty folder; give a new folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / ".tokenloop-write-check").write_bytes(b"x")
        (path / ".tokenloop-write-check").unlink()
    except OSError as e:
        raise UsageError(
            f"--save {folder}: can't write there ({e.strerror or e}); give a folder you can write"
        ) from None
    return path


MAX_LR = 1.0  # AdamW moves each weight by about lr a step: above 1 the weights are noise


# --- measuring --------------------------------------------------------------------------------
def files_checksum(folder: Path) -> str:
    """sha256 over the names and bytes of every file in a model folder."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    try:  # the fused CPU kernel is several times faster than the per-tensor loop
        return torch.optim.AdamW(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(params, lr=lr)


# --- the probe --------------------------------------------------------------------------------
def probe_next(backend, model: torch.nn.Module | None, ids: Sequence[int], target: int, k: int):
    """(top-k, target probability, target rank) of the next token after `ids`.

    model None: the served model through the backend; else the trained copy."""
    from ..scores import Scores

    if model is None:
        scores = backend.forward(ids, None, top_k=k)
    else:
        with torch.inference_mode():
            scores = Scores(model(torch.tensor([list(ids)]), use_cache=False, logits_to_keep=1).logits[0, -1])
    raw = Distribution.raw(scores)
    return candidates(backend, scores, raw, k), raw.prob(target), raw.rank(target)


# --- the loop ---------------------------------------------------------------------------------
def training(
    backend,
    text: str = DEFAULT_TEXT,
    probe_text: str | None = None,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    top_k: int = 8,
    save: str | Path | None = None,
) -> Iterator[TrainStep | TrainResult]:
    """Train a copy of the backend's model on `text`; yields a `TrainStep` per update, then a `TrainResult`."""
    check_numbers(steps, lr)
    if not backend.can_train:
        raise UsageError(
            f"training needs the model's weights in this process; the {backend.name} backend only returns scores"
        )
    ids, probe_ids, target = plan(backend, text, probe_text)
    probe_text = default_probe(text) if probe_text is None else probe_text
    out_dir = check_save(save)
    folder = Path(backend.folder)
    if out_dir is not None and out_dir.resolve().is_relative_to(folder.resolve()):
        raise UsageError(
            f"--save {save}: that is inside the model folder {folder}; save the trained copy somewhere else"
        )
    checksum = files_checksum(folder)
    before, p_before, rank_before = probe_next(backend, None, probe_ids, target, top_k)

    rss_start = rss()
    with backend.lock:  # the served model is never trained: we train a copy of it
        model = copy.deepcopy(backend.lm)
    model.requires_grad_(True)
    model.train()
    optimizer = make_optimizer(model.parameters(), lr)
    x = torch.tensor([ids])
    activations = SavedActivations(model)
    trace: list[TrainStep] = []
    measured: dict[str, int | None] = {}
    for step in range(1, steps + 1):
        raise_if_interrupted()
        t0 = time.perf_counter()
        with activations.hooks() if step == 1 else contextlib.nullcontext():  # measure once
            logits = model(x, use_cache=False).logits[0]  # one forward: a score for every position at once
        # Teacher forcing: position i is asked for the text's own token i+1.
        loss = torch.nn.functional.cross_entropy(logits[:-1], x[0, 1:])
        if not math.isfinite(loss.item()):
            raise UsageError(f"training diverged at step {step} (the loss is {loss.item()}): lower --lr, e.g. 1e-4")
        t1 = time.perf_counter()
        loss.backward()  # a gradient for every weight
        t2 = time.perf_counter()
        if step == 1:
            measured["gradients"] = tensor_bytes(p.grad for p in model.parameters())
        optimizer.step()  # AdamW nudges every weight
        optimizer.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if step == 1:
            measured["optimizer"] = tensor_bytes(t for s in optimizer.state.values() for t in s.values())
            now = rss()
            measured["rss_growth"] = None if rss_start is None or now is None else now - rss_start
        train_ms = (t3 - t0) * 1000
        with torch.inference_mode():  # inference on the same tokens, with the new weights
            t4 = time.perf_counter()
            model(x, use_cache=False)
            infer_ms = ms_since(t4)
        _, p_now, _ = probe_next(backend, model, probe_ids, target, 1)
        record = TrainStep(
            step, loss.detach().item(), train_ms, (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000, infer_ms, p_now
        )
        trace.append(record)
        yield record

    after, p_after, rank_after = probe_next(backend, model, probe_ids, target, top_k)
    cost = measure_cost(backend, model, ids, trace, activations.bytes, measured)
    saved = failed = None
    if out_dir is not None:
        try:
            save_model(model, folder, out_dir)
            saved = str(out_dir)
        except OSError as e:  # a disk that filled during training: the results still print
            failed = f"--save {save}: writing the trained copy failed ({e.strerror or e})"
    del model, optimizer
    unchanged = files_checksum(folder) == checksum
    yield TrainResult(
        text,
        probe_text,
        Candidate(target, backend.token_text(target), p_after, math.log(p_after) if p_after > 0 else -math.inf),
        steps,
        lr,
        [s.loss for s in trace],
        before,
        after,
        p_before,
        p_after,
        rank_before,
        rank_after,
        cost,
        unchanged,
        checksum,
        str(folder),
        saved,
        trace,
        failed,
    )


def save_model(model: torch.nn.Module, source: Path, target: Path) -> None:
    """Write the trained weights as a model folder that `--model DIR` loads."""
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)


def train(
    backend,
    text: str = DEFAULT_TEXT,
    probe: str | None = None,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    on_step: Callable[[TrainStep], None] | None = None,
    top_k: int = 8,
    save: str | Path | None = None,
) -> TrainResult:
    """Run `training` to the end; `on_step` sees each `TrainStep` as it happens."""
    for record in training(backend, text, probe, steps, lr, top_k, save):
        if isinstance(record, TrainResult):
            return record
        if on_step is not None:
            on_step(record)
    raise AssertionError("training ended without a result")
