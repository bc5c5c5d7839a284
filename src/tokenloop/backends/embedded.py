"""The embedded backend: a real Hugging Face causal LM running in this process, on the CPU.

Two ways to get the next-token scores, side by side:
- no cache: the whole sequence goes through the model every step (the lesson's pseudo-code);
- KV cache: the keys and values of tokens already seen are kept, so after the prefill only the
  new token goes through the model.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError
from ..model import files as model_files
from ..scores import Scores
from . import model_name, reusable
from .tokenizer import TextByTokenizer, Tokenizer


@dataclass
class KVCache:
    """The model's past keys/values and the token ids they were computed from."""

    past: Any = None
    seen: list[int] = field(default_factory=list)


class EmbeddedBackend(TextByTokenizer):
    name = "embedded"
    in_process = True  # weights, cache and tokenizer in this process
    full_vocab = True
    max_top_k = None
    can_score = True  # all_logits: every position in one pass
    can_train = True  # `lm` is a torch module whose weights a training step changes
    picker = None  # the loop's own sampler picks
    gguf_file = None  # the weights come from a model folder (model_dir)

    @property
    def can_chat(self) -> bool:
        return bool(self.tokenizer.chat_template)

    def __init__(self, model: str | None = None, log=None, dtype: torch.dtype = torch.float32):
        model_files.offline()
        self.folder: Path = model_files.resolve(model, log)
        self.model_dir = str(self.folder)
        import transformers
        from transformers import AutoModelForCausalLM

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        try:
            self.lm = AutoModelForCausalLM.from_pretrained(self.folder, dtype=dtype, local_files_only=True)
        except Exception as e:
            raise ModelError(f"{self.folder} could not be loaded as a causal LM ({type(e).__name__}: {e})") from e
        self.lm.eval()
        self.lm.requires_grad_(False)
        self.config = self.lm.config
        self.model = model_name(model)
        self.context_length = int(getattr(self.config, "max_position_embeddings", 2048))
        self.tokenizer = Tokenizer.from_folder(self.folder, self.model, self._eos_ids())
        self.eos_ids = self.tokenizer.eos_ids  # the run's end tokens (a test may set its own)
        self.vocab_size = int(self.config.vocab_size)
        # One forward at a time: the web app shares this model across requests.
        self.lock = threading.Lock()

    # --- description ---------------------------------------------------------------------------
    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self.config, getattr(self.lm, "generation_config", None)):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids

    # --- the forward pass ----------------------------------------------------------------------
    def new_cache(self) -> KVCache:
        return KVCache()

    @torch.inference_mode()
    def forward(self, ids: Sequence[int], cache: KVCache | None = None, top_k: int = 8) -> Scores:
        """Scores for the token after `ids`: the last position's logits over the whole vocabulary."""
        with self.lock:
            if cache is None:
                # No cache: run the whole model over the whole sequence.
                out = self.lm(torch.tensor([list(ids)]), use_cache=False, logits_to_keep=1)
                return Scores(out.logits[0, -1], tokens_in=len(ids))
            # KV cache: reuse what was computed for the prefix we share with the last call;
            # only the new tokens go through the model (all of the prompt at the prefill).
            keep = reusable(cache.seen, ids)
            if cache.past is not None and keep < len(cache.seen):
                cache.past.crop(keep - len(cache.seen))  # negative: drop that many tokens
            new = list(ids[keep:])
            out = self.lm(torch.tensor([new]), cache=cache.past if keep else None, use_cache=True, logits_to_keep=1)
            cache.past, cache.seen = out.cache, list(ids)
            return Scores(out.logits[0, -1], tokens_in=len(new))

    @torch.inference_mode()
    def all_logits(self, ids: Sequence[int]) -> torch.Tensor:
        """(T, V) logits at every position of `ids`, from one forward pass (score mode, the agreement check)."""
        with self.lock:
            return self.lm(torch.tensor([list(ids)]), use_cache=False).logits[0]

    @property
    def engine(self) -> str:
        """What runs the model, and in which dtype: 'transformers float32'."""
        return f"transformers {self.kv_dtype}"

    @property
    def kv_dtype(self) -> str:
        """What the keys and values are stored in (the model's own dtype here)."""
        return str(next(self.lm.parameters()).dtype).removeprefix("torch.")
