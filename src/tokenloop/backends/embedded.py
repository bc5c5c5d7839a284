"""The embedded backend: a real Hugging Face causal LM running in this process, on the CPU.

Two ways to get the next-token scores, side by side:
- no cache: the whole sequence goes through the model every step (the lesson's pseudo-code);
- KV cache: the keys and values of tokens already seen are kept, so after the prefill only the
  new token goes through the model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError, UsageError
from ..model import files as model_files
from ..scores import Scores


@dataclass
class KVCache:
    """The model's past keys/values and the token ids they were computed from."""

    past: Any = None
    seen: list[int] = field(default_factory=list)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class EmbeddedBackend:
    name = "embedded"
    in_process = True  # weights, cache and tokenizer in this process
    full_vocab = True
    max_top_k = None
    can_score = True  # all_logits: every position in one pass
    can_train = True  # `lm` is a torch module whose weights a training step changes
    picker = None  # the loop's own sampler picks

    @property
    def can_chat(self) -> bool:
        return bool(self.chat_template)

    def __init__(self, model: str | None = None, log=None, dtype: torch.dtype = torch.float32):
        model_files.offline()
        self.folder: Path = model_files.resolve(model, log)
        self.model_path = str(self.folder)
        import transformers
        from tokenizers import Tokenizer
        from transformers import AutoModelForCausalLM

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        tokenizer_file = self.folder / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelError(f"{self.folder} has no tokenizer.json; tokenloop needs a fast tokenizer file")
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        try:
            self.lm = AutoModelForCausalLM.from_pretrained(self.folder, dtype=dtype, local_files_only=True)
        except Exception as e:
            raise ModelError(f"{self.folder} could not be loaded as a causal LM ({type(e).__name__}: {e})") from e
        self.lm.eval()
        self.lm.requires_grad_(False)
        self.config = self.lm.config
        self.model = self._model_name(model)
        self.context_length = int(getattr(self.config, "max_position_embeddings", 2048))
        self.eos_ids = frozenset(self._eos_ids())
        self.vocab_size = int(self.config.vocab_size)
        self.chat_template = self._chat_template()
        self._token_text: dict[int, str] = {}
        # One forward at a time: the web app shares this model across requests.
        self.lock = threading.Lock()

    # --- description ---------------------------------------------------------------------------
    def _model_name(self, model: str | None) -> str:
        if model is None:
            return model_files.DEFAULT_NAME
        path = Path(model)
        return path.stem if path.suffix.lower() == ".gguf" else path.resolve().name

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self.config, getattr(self.lm, "generation_config", None)):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids

    def _chat_template(self) -> str | None:
        jinja = self.folder / "chat_template.jinja"
        if jinja.is_file():
            return jinja.read_text()
        config = self.folder / "tokenizer_config.json"
        if config.is_file():
            return json.loads(config.read_text()).get("chat_template")
        return None

    # --- text <-> ids --------------------------------------------------------------------------
    def chat_text(self, messages: list[dict]) -> str:
        """Render a conversation through the model's own chat template."""
        if not self.chat_template:
            raise UsageError(f"{self.model} has no chat template: drop --chat and give a raw prompt")
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        special = {"bos_token": self._special("bos"), "eos_token": self._special("eos")}
        return env.from_string(self.chat_template).render(messages=messages, add_generation_prompt=True, **special)

    def _special(self, kind: str) -> str:
        config = self.folder / "tokenizer_config.json"
        if config.is_file():
            value = json.loads(config.read_text()).get(f"{kind}_token")
            if isinstance(value, dict):
                value = value.get("content")
            return value or ""
        return ""

    def encode(self, text: str, chat: bool = False) -> list[int]:
        if chat:
            text = self.chat_text([{"role": "user", "content": text}])
        return self.tokenizer.encode(text).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def token_text(self, token_id: int) -> str:
        """A single token as text (byte pieces of a longer character come out as '\ufffd')."""
        text = self._token_text.get(token_id)
        if text is None:
            text = self._token_text[token_id] = self.tokenizer.decode([token_id], skip_special_tokens=False)
        return text

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
            keep = min(common_prefix(cache.seen, ids), len(ids) - 1)
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
    def path(self) -> str:
        return f"transformers {self.kv_dtype}"

    @property
    def kv_dtype(self) -> str:
        """What the keys and values are stored in (the model's own dtype here)."""
        return str(next(self.lm.parameters()).dtype).removeprefix("torch.")
