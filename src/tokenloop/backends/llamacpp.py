"""The embedded model through llama.cpp, in this process (needs the optional `llama-cpp-python`).

llama.cpp runs the GGUF file as it is shipped (SmolLM2's layers in Q4_1: about 100 MB read
per token instead of 540 MB in float32), with its own tokenizer and its own KV cache. We use
its low-level API the way the loop needs it: put tokens in a batch, `llama_decode`, then read
the raw logits of the last position with `llama_get_logits_ith` and hand them to the same
sampling code as every other backend. (`create_completion(logprobs=...)` would sort the whole
vocabulary in Python on every step.)

llama.cpp keeps one KV cache per context; the backend remembers which `LlamaCppCache` it
currently holds and refills it when another one is used.
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelError, UsageError
from ..model import files as model_files
from ..scores import Scores
from . import llamacpp_build, reusable
from .tokenizer import TextByTokenizer, Tokenizer

INSTALL_HINT = "pip install llama-cpp-python"  # llamacpp_build.rebuild_command() adds flags for this CPU


def available() -> bool:
    """llama-cpp-python is installed: a package with its own __init__, not a folder of libraries left
    behind by an uninstall (which Python would take for an empty namespace package)."""
    spec = importlib.util.find_spec("llama_cpp")
    return spec is not None and spec.origin is not None


@dataclass
class LlamaCppCache:
    """The token ids whose keys/values llama.cpp's context holds for this run."""

    seen: list[int] = field(default_factory=list)


def threads() -> int:
    """As many threads as torch uses (it follows OMP_NUM_THREADS), so paths compare fairly."""
    return torch.get_num_threads()


class LlamaCppBackend(TextByTokenizer):
    name = "embedded"
    in_process = True  # weights, cache and tokenizer in this process
    full_vocab = True
    max_top_k = None
    can_score = True  # all_logits
    can_train = False
    picker = None
    config = None  # no transformers config: the staircase's model numbers need the torch engines
    model_dir = None  # no model folder: the weights are one GGUF file (gguf_file)

    @property
    def can_chat(self) -> bool:
        return bool(self.tokenizer.chat_template)

    def __init__(self, model: str | None = None, log=None, n_ctx: int | None = None):
        if not available():
            raise UsageError(
                f"--engine llama.cpp needs llama-cpp-python: run `{INSTALL_HINT}` (it compiles for a few minutes)"
            )
        self.gguf = self._gguf(model)
        llamacpp_build.check(self.gguf)  # a build that can't run on this CPU is an error here, not a crash below
        import llama_cpp

        self._c = llama_cpp
        self.model = model_files.DEFAULT_NAME if model is None else self.gguf.stem
        self.gguf_file = str(self.gguf)
        self.dtype = self._file_type()
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.gguf),
                n_ctx=n_ctx or 0,
                n_batch=512,
                n_threads=threads(),
                n_threads_batch=threads(),
                logits_all=False,
                verbose=False,
            )
        except Exception as e:
            raise ModelError(f"llama.cpp could not load {self.gguf} ({type(e).__name__}: {e})") from e
        self.context_length = self.llm.n_ctx()
        self.vocab_size = self.llm.n_vocab()
        self.tokenizer = Tokenizer.from_llama(self.llm, self.model)
        self.eos_ids = self.tokenizer.eos_ids  # the same stop as the other engines
        self._batch = llama_cpp.llama_batch_init(512, 0, 1)
        self._holder: LlamaCppCache | None = None  # whose tokens the context's KV cache holds
        self.lock = threading.Lock()

    def __del__(self):
        batch = getattr(self, "_batch", None)
        if batch is not None:
            self._c.llama_batch_free(batch)
            self._batch = None

    # --- description ---------------------------------------------------------------------------
    @staticmethod
    def _gguf(model: str | None) -> Path:
        if model is None:
            return model_files.default_gguf()
        path = Path(model).expanduser()
        if not path.exists():
            raise ModelError(f"--model {model}: no such file or folder; give a .gguf file")
        if path.suffix.lower() != ".gguf" or not path.is_file():
            raise UsageError(
                f"--engine llama.cpp runs a .gguf file, and {model} is not one: give a .gguf file or leave out --engine"
            )
        return path

    def _file_type(self) -> str:
        """The GGUF's own weight format, e.g. 'Q4_1' (read from the file name, else 'gguf')."""
        stem = self.gguf.stem.upper()
        for part in reversed(stem.replace("-", ".").split(".")):
            if part[:1] in ("Q", "F", "B") and any(ch.isdigit() for ch in part):
                return part
        return "gguf"

    @property
    def engine(self) -> str:
        """What runs the model, and in which format: 'llama.cpp Q4_1'."""
        return f"llama.cpp {self.dtype}"

    @property
    def weight_bytes(self) -> int:
        """Bytes one decode step reads: every tensor of the file but the embedding's unread rows."""
        return self.llm._model.size() if hasattr(self.llm, "_model") else self.gguf.stat().st_size

    # --- the forward pass ----------------------------------------------------------------------
    def new_cache(self) -> LlamaCppCache:
        return LlamaCppCache()

    def _decode(self, ids: Sequence[int], start: int, outputs: str = "last") -> None:
        """Push `ids` (at positions start, start+1, ...) through the model, in batches of 512."""
        batch = self._batch
        for offset in range(0, len(ids), 512):
            chunk = ids[offset : offset + 512]
            batch.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, start + offset + i, 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = outputs == "all"
            batch.logits[len(chunk) - 1] = True
            code = self._c.llama_decode(self.llm.ctx, batch)
            if code != 0:
                raise ModelError(f"llama_decode failed with code {code} (context of {self.context_length} tokens)")

    def _logits(self, i: int = -1) -> torch.Tensor:
        pointer = self._c.llama_get_logits_ith(self.llm.ctx, i)
        row = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self.vocab_size,))
        return torch.from_numpy(row.copy())

    def _forget(self, keep: int) -> None:
        """Drop the keys/values of positions >= keep from the context."""
        memory = self._c.llama_get_memory(self.llm.ctx)
        self._c.llama_memory_seq_rm(memory, -1, keep, -1)

    def forward(self, ids: Sequence[int], cache: LlamaCppCache | None = None, top_k: int = 8) -> Scores:
        ids = list(ids)
        with self.lock:
            if cache is None:  # no cache: the whole sequence through the model, from an empty context
                self._forget(0)
                self._holder = None
                self._decode(ids, 0)
                return Scores(self._logits(), tokens_in=len(ids))
            seen = cache.seen if self._holder is cache else []
            keep = reusable(seen, ids)
            self._forget(keep)
            self._decode(ids[keep:], keep)
            self._holder, cache.seen = cache, ids
            return Scores(self._logits(), tokens_in=len(ids) - keep)

    def all_logits(self, ids: Sequence[int]) -> torch.Tensor:
        """(T, V) logits at every position of `ids` (for the agreement check)."""
        ids = list(ids)
        with self.lock:
            self._forget(0)
            self._holder = None
            rows = []
            for start in range(0, len(ids), 512):  # a batch at a time: its logits are read before the next
                chunk = ids[start : start + 512]
                self._decode(chunk, start, outputs="all")
                rows += [self._logits(i) for i in range(len(chunk))]
            return torch.stack(rows)
