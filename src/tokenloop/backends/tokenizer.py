"""The text side of a model that runs in this process: text <-> ids, one token's text, the chat
template and the end tokens.

The embedded, fast and llama.cpp backends each hold one `Tokenizer` (`backend.tokenizer`) and
pass their text calls to it; only where the tokens come from differs: a model folder's
`tokenizer.json` (`from_folder`), or the GGUF file's own vocabulary in llama.cpp (`from_llama`).
A server has its own tokenizer behind HTTP (`server/ids.py`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..errors import ModelError, UsageError


class Tokenizer:
    def __init__(
        self,
        model: str,
        encode: Callable[[str], list[int]],
        decode: Callable[[list[int]], str],
        eos_ids: Iterable[int],
        chat_template: str | None = None,
        specials: Callable[[], dict[str, str]] = dict,
    ):
        self.model = model  # the model's name, for messages
        self._encode = encode  # text -> ids; special tokens written in the text are read as such
        self._decode = decode  # ids -> text; special tokens are written out
        self.eos_ids = frozenset(eos_ids)  # the model's end tokens
        self.chat_template = chat_template  # a Jinja template, or None: the model has none
        self._specials = specials  # the template's bos_token and eos_token strings, asked when rendering
        self._texts: dict[int, str] = {}  # one token's text, by id (the web page asks for the same ones often)

    @classmethod
    def from_folder(cls, folder: Path, model: str, eos_ids: Iterable[int]) -> Tokenizer:
        """A Hugging Face model folder's tokenizer.json, chat template and special tokens."""
        from tokenizers import Tokenizer as Vocabulary

        file = folder / "tokenizer.json"
        if not file.is_file():
            raise ModelError(f"{folder} has no tokenizer.json; tokenloop needs a fast tokenizer file")
        vocabulary = Vocabulary.from_file(str(file))
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else None
        jinja = folder / "chat_template.jinja"
        template = jinja.read_text() if jinja.is_file() else (config or {}).get("chat_template")

        def special(kind: str) -> str:
            value = (config or {}).get(f"{kind}_token")
            return (value.get("content") if isinstance(value, dict) else value) or ""

        return cls(
            model,
            lambda text: vocabulary.encode(text).ids,
            lambda ids: vocabulary.decode(ids, skip_special_tokens=False),
            eos_ids,
            template,
            lambda: {"bos_token": special("bos"), "eos_token": special("eos")},
        )

    @classmethod
    def from_llama(cls, llm, model: str) -> Tokenizer:
        """The vocabulary inside a GGUF file, through llama-cpp-python's `Llama`."""
        add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        tokenizer = cls(
            model,
            lambda text: llm.tokenize(text.encode(), add_bos=add_bos, special=True),
            lambda ids: llm.detokenize(ids, special=True).decode("utf-8", errors="replace"),
            (t for t in (llm.token_eos(),) if t >= 0),
            llm.metadata.get("tokenizer.chat_template"),
        )
        tokenizer._specials = lambda: {
            "bos_token": tokenizer.token_text(llm.token_bos()),
            "eos_token": tokenizer.token_text(llm.token_eos()),
        }
        return tokenizer

    def chat_text(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Render a conversation through the model's own chat template (ending with the assistant's
        turn marker unless `add_generation_prompt` is False)."""
        if not self.chat_template:
            raise UsageError(f"{self.model} has no chat template: drop --chat and give a raw prompt")
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        return env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt, **self._specials()
        )

    def encode(self, text: str, chat: bool = False) -> list[int]:
        if chat:
            text = self.chat_text([{"role": "user", "content": text}])
        return self._encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self._decode(list(ids))

    def token_text(self, token_id: int) -> str:
        """A single token as text (byte pieces of a longer character come out as '\ufffd')."""
        text = self._texts.get(token_id)
        if text is None:
            text = self._texts[token_id] = self._decode([token_id])
        return text


class TextByTokenizer:
    """The Backend protocol's text methods for a backend that holds a `Tokenizer` as `self.tokenizer`:
    the embedded, fast and llama.cpp backends share these, not a base class's state."""

    tokenizer: Tokenizer

    def chat_text(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.chat_text(messages, add_generation_prompt)

    def encode(self, text: str, chat: bool = False) -> list[int]:
        return self.tokenizer.encode(text, chat)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.token_text(token_id)
