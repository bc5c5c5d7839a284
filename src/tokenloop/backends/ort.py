"""The embedded model as an ONNX graph in ONNX Runtime (`--engine onnxruntime`).

The whole step runs in native code: ONNX Runtime executes a graph of fused operators (the
attention with its rotary positions and KV cache in one `GroupQueryAttention`, the norms with
the residual add in one `SkipSimplifiedLayerNormalization`) instead of ~25 Python-dispatched
tensor operations a layer. Two formats:

    float32   the same weights as the default model; logits within float rounding of it
    int4      `MatMulNBits`: each row's weights in blocks of 32 with one scale, multiplied with
              the activations quantized to int8 (ONNX Runtime's `accuracy_level` 4), the kernels
              picked at run time for the CPU (AVX2, AVX-512, VNNI); the GGUF's own blocks are
              kept exactly (`ort_int4.py`) and the output head is int8

The graph is built once per model folder and format by onnxruntime-genai's model builder (a
PyPI wheel: nothing is compiled on the user's machine) and kept in the user cache. Stepping it
needs neither torch nor transformers: scores come back as numpy arrays, so a greedy run on this
engine starts without importing torch (the demo's first distribution comes sooner).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError, UsageError
from ..model import files as model_files
from ..model.config import ModelConfig
from ..scores import Scores
from . import ORT_DTYPES, WEIGHTS_VERSION, model_name, ort_int4, reusable
from .tokenizer import TextByTokenizer, Tokenizer

INSTALL_HINT = "make setup (it installs onnxruntime and onnxruntime-genai from the lock)"
GRAPH = "model.onnx"
DONE = ".built"  # written last: a folder without it was left by a build that didn't finish
GRAPH_VERSION = 4  # bump when what `build` writes changes: cached graphs are keyed by it

# The builder's precision and options for each format (README of onnxruntime-genai's builder).
BUILD = {
    "float32": ["-p", "fp32"],
    "int4": [
        "-p",
        "int4",
        "--extra_options",
        "accuracy_level=4",  # int8 activations: the fast kernels on every x86-64 CPU
        "matmul_mixed_precision=last_matmul:int8",  # the output head in int8: int4 costs it too much
        "shared_embeddings=false",  # (a shared int8 head loses its weights in onnxruntime-genai 0.18's builder)
    ],  # symmetric int4 (no zero points): ort_int4.rewrite then puts the checkpoint's own blocks in
}


def graph_folder(folder: Path, dtype: str) -> Path:
    """Where the ONNX form of a model folder is kept, keyed by its weights and the builder's version."""
    import importlib.metadata

    weights = sorted(folder.glob("*.safetensors"))
    key = ":".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in weights)
    try:
        builder = importlib.metadata.version("onnxruntime-genai")
    except importlib.metadata.PackageNotFoundError:
        builder = "?"
    digest = hashlib.sha1(f"{key}:{BUILD[dtype]}:{builder}:v{WEIGHTS_VERSION}.{GRAPH_VERSION}".encode()).hexdigest()[
        :10
    ]
    return model_files.cache_root() / "onnx" / f"{folder.name}-{dtype}-{digest}"


def build(folder: Path, dtype: str, log=None) -> Path:
    """The ONNX graph of a model folder in `dtype`, built on first use (about 10-20 s), then cached.
    Two first runs at once build it once: the second waits on a lock, then finds it done."""
    target = graph_folder(folder, dtype)
    if (target / DONE).is_file():
        return target
    root = model_files.writable_cache(target.parent)
    with model_files.one_at_a_time(root / f".{target.name}.lock"):
        if (target / DONE).is_file():
            return target
        say = log or (lambda msg: print(msg, file=sys.stderr))
        say(f"First use of --engine onnxruntime --dtype {dtype}: building the ONNX graph in {target} (once) ...")
        shutil.rmtree(target, ignore_errors=True)  # a build that was killed half-way
        model_files.sweep(root)  # and the temp folders such builds leave (<target>.<8 characters>)
        with tempfile.TemporaryDirectory(dir=root, prefix=f"{target.name}.") as tmp:
            out, hub = Path(tmp) / "graph", Path(tmp) / "hub"
            argv = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-m", str(folder), "-i", str(folder)]
            argv += ["-o", str(out), "-e", "cpu", "-c", str(hub), *BUILD[dtype]]
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
            done = subprocess.run(argv, env=env, capture_output=True, text=True)
            if done.returncode != 0 or not (out / GRAPH).is_file():
                last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise ModelError(
                    f"building the ONNX graph of {folder.name} failed ({last[0][:300]}); try --engine torch"
                )
            if dtype == "int4":
                ort_int4.rewrite(out, folder)
            session(out)  # a graph ONNX Runtime can't load is not kept
            (out / DONE).write_text(dtype)
            out.replace(target)
        say("ONNX graph built.")
    return target


def session(folder: Path):
    """An ONNX Runtime session on the graph in `folder`, with the threads `threads()` says."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads(), 1
    options.log_severity_level = 3  # errors only: its warnings are for graph authors
    spin = os.environ.get("TOKENLOOP_ORT_SPIN", "step")
    if spin == "0":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif spin == "step":
        options.add_session_config_entry("session.force_spinning_stop", "1")
    try:
        return ort.InferenceSession(str(folder / GRAPH), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own classes for a graph it can't load
        raise ModelError(f"{folder}: ONNX Runtime can't load the graph ({str(e)[:300]}); try --engine torch") from None


def stored_bytes(graph: Path) -> int:
    """Bytes of weights one decode step reads: every stored tensor but an embedding table that only
    a lookup reads (one row a step). Read from the graph's header; the tensors stay on disk."""
    import onnx

    model = onnx.load(str(graph / GRAPH), load_external_data=False)
    size = {t.name: sum(int(e.value) for e in t.external_data if e.key == "length") for t in model.graph.initializer}
    used_by = {}
    for node in model.graph.node:
        for name in node.input:
            used_by.setdefault(name, set()).add(node.op_type)
    return sum(n for name, n in size.items() if used_by.get(name) != {"Gather"})


@dataclass
class OrtCache:
    """Every layer's past keys and values as the graph returned them, for the ids in `seen`."""

    past: list[np.ndarray] = field(default_factory=list)  # key, value of layer 0, then layer 1, ...
    seen: list[int] = field(default_factory=list)


def threads() -> int:
    """OMP_NUM_THREADS when set (torch follows it too, so the paths compare fairly); else 0, which
    lets ONNX Runtime use one thread per physical core, as torch does."""
    try:
        return max(0, int(os.environ.get("OMP_NUM_THREADS", "0")))
    except ValueError:
        return 0


class OrtBackend(TextByTokenizer):
    """The embedded model through ONNX Runtime, with weights in `dtype` (float32 or int4)."""

    name = "embedded"
    in_process = True  # the graph, its cache and the tokenizer are in this process
    full_vocab = True
    max_top_k = None
    can_score = True  # all_logits: every position in one pass
    can_train = False  # frozen graph: the training demo loads the weights into transformers
    picker = None  # the loop's own sampler picks
    gguf_file = None
    kv_dtype = "float32"

    @property
    def can_chat(self) -> bool:
        return bool(self.tokenizer.chat_template)

    def __init__(self, model: str | None = None, log=None, dtype: str = "int4"):
        if dtype not in ORT_DTYPES:
            raise UsageError(f"--engine onnxruntime --dtype {dtype}: choose one of {', '.join(ORT_DTYPES)}")
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise ModelError(f"--engine onnxruntime needs onnxruntime: run `{INSTALL_HINT}`") from None
        model_files.offline()
        self.folder = model_files.resolve(model, log)
        self.model_dir = str(self.folder)
        self.dtype = dtype
        self.config = ModelConfig.plain_llama(self.folder, "--engine onnxruntime", hint="; leave out --engine")
        self.graph = build(self.folder, dtype, log)
        self.session = session(self.graph)
        self.model = model_name(model)
        self.tokenizer = Tokenizer.from_folder(self.folder, self.model, self.config.stop_ids)
        self.context_length = self.config.context
        self.vocab_size = self.config.vocab
        self.eos_ids = self.tokenizer.eos_ids
        self.layers = self.config.layers
        self.outputs = ["logits"] + [f"present.{i}.{kv}" for i in range(self.layers) for kv in ("key", "value")]
        self.lock = threading.Lock()

    @property
    def engine(self) -> str:
        return f"onnxruntime {self.dtype}"

    @property
    def weight_bytes(self) -> int:
        return stored_bytes(self.graph)

    def new_cache(self) -> OrtCache:
        return OrtCache()

    def _empty_past(self) -> list[np.ndarray]:
        c = self.config
        return [np.zeros((1, c.kv_heads, 0, c.head_dim), np.float32)] * (2 * self.layers)

    def _run(self, new: Sequence[int], past: list[np.ndarray], total: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """(logits (T, V), present keys/values) for `new` after the positions `past` holds."""
        feed = {
            "input_ids": np.asarray([list(new)], dtype=np.int64),
            "attention_mask": np.ones((1, total), dtype=np.int64),
        }
        for i in range(self.layers):
            feed[f"past_key_values.{i}.key"], feed[f"past_key_values.{i}.value"] = past[2 * i], past[2 * i + 1]
        logits, *present = self.session.run(self.outputs, feed)
        return logits[0], present

    def forward(self, ids: Sequence[int], cache: OrtCache | None = None, top_k: int = 8) -> Scores:
        """Scores for the token after `ids`, over the whole vocabulary (a numpy array)."""
        with self.lock:
            if cache is None:  # no cache: the whole sequence through the graph
                logits, _ = self._run(ids, self._empty_past(), len(ids))
                return Scores(logits[-1], tokens_in=len(ids))
            keep = reusable(cache.seen, ids)  # the prefix shared with the last call; only the rest runs
            if keep == 0:
                past = self._empty_past()
            elif keep < len(cache.seen):  # the ids changed after `keep`: forget the rest
                past = [np.ascontiguousarray(p[:, :, :keep]) for p in cache.past]
            else:
                past = cache.past
            logits, cache.past = self._run(ids[keep:], past, len(ids))
            cache.seen = list(ids)
            return Scores(logits[-1], tokens_in=len(ids) - keep)

    def all_logits(self, ids: Sequence[int]):
        """(T, V) logits at every position of `ids`, as a torch tensor (for the agreement check)."""
        import torch

        with self.lock:
            logits, _ = self._run(ids, self._empty_past(), len(ids))
        return torch.from_numpy(logits)
