"""Token ids and their text, as far as the server has told us.

Most servers key candidates by id and detokenize by id: then this is a cache of display text.
A server that names candidates only by their string (llama-cpp-python, Ollama: "text mode") needs
more: each string is looked up to an id once (`/tokenize` of the string), or given a local
negative id when that fails, and the run's text is rebuilt from the prompt's own text plus each
generated token's string, exactly as the server wrote it.

While a stream runs on a server that a second request would interrupt (`hold`), no lookup is
made: strings get placeholders, resolved once the stream is over.

Side requests are bounded: at most LOOKUPS_PER_ANSWER `/tokenize` lookups per answer (`new_answer`
starts the count; a server that names 10,000 candidates by text gets placeholders past it), and a
token whose `/detokenize` answer can't be read falls back to the server's own string, once, never
by asking again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import wire

LOOKUPS_PER_ANSWER = 64  # above any logprobs cap a server keeps (vLLM's default is 20)


def clean(text: str) -> bool:
    """A server token string that reads as the token's text (not '', '\ufffd', 'bytes:..', 'token_id:N')."""
    return bool(text) and "\ufffd" not in text and not text.startswith("bytes:") and not wire.TOKEN_ID_KEY.match(text)


class TokenTable:
    def __init__(self, lookup: Callable[[str], int | None], detokenize: Callable[[list[int]], str] | None):
        self._lookup = lookup  # one token string -> its id, or None
        self._detokenize = detokenize  # ids -> text, None where the server has no /detokenize
        self.texts: dict[int, str] = {}  # display text per id
        self.pieces: dict[int, str] = {}  # the server's token string per id: what text mode appends
        self.ids_of_text: dict[str, int] = {}  # text mode: token string -> id (negative: a placeholder)
        self.placeholders: dict[str, int] = {}  # token string -> its local negative id
        self.prompts: dict[tuple[int, ...], str] = {}  # prompt ids -> the text they came from
        self.hold = False  # True while a stream runs that a second request would cut short
        self.lookups_left = LOOKUPS_PER_ANSWER  # /tokenize calls this answer may still make

    def new_answer(self) -> None:
        """A new answer's candidates are about to be read: its own budget of lookups."""
        self.lookups_left = LOOKUPS_PER_ANSWER

    def remember_prompt(self, ids: Sequence[int], text: str) -> None:
        self.prompts[tuple(ids)] = text

    def token_text(self, token_id: int) -> str:
        """A token as display text: detokenized by id (the server's string may be '', '\ufffd', 'bytes:..')."""
        text = self.texts.get(token_id)
        if text is None:
            if token_id < 0 or self._detokenize is None or self.hold:
                return self.pieces.get(token_id, "")
            # the server's own string stands in while /detokenize is asked, so a fallback that
            # comes back here (an answer it can't read) finds it instead of asking again
            self.texts[token_id] = self.pieces.get(token_id, "")
            text = self.texts[token_id] = self._detokenize([token_id])
        return text

    def text_of(self, ids: list[int]) -> str:
        """Text mode: the remembered prompt's own text, then each generated token's string."""
        for prompt, text in reversed(list(self.prompts.items())):
            if tuple(ids[: len(prompt)]) == prompt:
                return text + "".join(self.piece(i) for i in ids[len(prompt) :])
        return "".join(self.piece(i) for i in ids)

    def piece(self, token_id: int) -> str:
        piece = self.pieces.get(token_id)
        return piece if piece is not None else self.token_text(token_id)

    def step_of(self, ids: Sequence[int]) -> int | None:
        """Which step of a run this call is, counted from the prompt it started from."""
        for prompt in reversed(list(self.prompts)):
            if len(ids) >= len(prompt) and tuple(ids[: len(prompt)]) == prompt:
                return len(ids) - len(prompt) + 1
        return None

    def id_of(self, entry: wire.Entry) -> int:
        """A candidate's token id; in text mode found by looking its string up (a negative id if that fails)."""
        if entry.id is not None:
            if clean(entry.text):  # spare a /detokenize call: the server's string already reads right
                self.texts.setdefault(entry.id, entry.text)
                self.pieces.setdefault(entry.id, entry.text)
            return entry.id
        token_id = self.ids_of_text.get(entry.text)
        if token_id is None and self.hold:
            token_id = self.placeholder(entry.text)  # no request while a stream runs: it would cut it short
        elif token_id is None:
            token_id = self.ids_of_text[entry.text] = self.lookup(entry.text)
        self.pieces.setdefault(token_id, entry.text)  # text mode appends exactly what the server wrote
        if token_id < 0 or clean(entry.text):
            self.texts.setdefault(token_id, entry.text)
        return token_id

    def lookup(self, text: str) -> int:
        found = None
        if text and self.lookups_left > 0:
            self.lookups_left -= 1
            found = self._lookup(text)
        ok = isinstance(found, int) and 0 <= found < wire.MAX_ID
        return found if ok else self.placeholder(text)

    def placeholder(self, text: str) -> int:
        """A local negative id for a token string the server gave no id for."""
        return self.placeholders.setdefault(text, -2 - len(self.placeholders))

    def resolve(self, token_id: int) -> int:
        """A placeholder handed out during a stream, looked up now that the stream is over."""
        if token_id >= 0:
            return token_id
        text = self.pieces.get(token_id, "")
        real = self.ids_of_text.get(text)
        if real is None:
            real = self.ids_of_text[text] = self.lookup(text)
        return real if real >= 0 else token_id
