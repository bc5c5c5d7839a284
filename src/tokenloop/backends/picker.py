"""The picker contract: how a backend may pick the tokens of a run instead of tokenloop's sampler.

A server can pick for the loop (`--server-sample`: it samples each token) or run the whole loop
itself (`--stream`); see `server/picks.py`. The loop (`loop.generate`) stays the one loop: it asks
the picker for one `Step` at a time and does the append, the counting and the stopping itself.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, overload

if TYPE_CHECKING:
    from ..records import Step
    from ..sampling import Sampler


class ReadOnlyIds(Sequence[int]):
    """The loop's token ids as a picker sees them: read as they grow, never changed.

    No append, no item or slice assignment; a slice is a new list, so `list(view)` or
    `view[:n]` is the picker's own copy."""

    __slots__ = ("_ids",)

    def __init__(self, ids: list[int]):
        self._ids = ids

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index):
        return self._ids[index]

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"ReadOnlyIds({self._ids!r})"


@dataclass(frozen=True)
class Pick:
    """One token a picker picked: its record, and whether the server ended the run on it."""

    step: Step
    ends: bool = False  # the server stopped after this token (an end token, even one not in eos_ids)


@dataclass(frozen=True)
class Run:
    """What a picker is told about the run it picks for."""

    ids: ReadOnlyIds  # the prompt, then every token the loop has appended so far (it grows between yields)
    prompt_length: int  # how many of `ids` are the prompt
    sampler: Sampler
    seed: int | None
    show: int  # how many candidates a Step lists
    first: int  # the number of the first Step to yield
    max_new: int  # the most tokens the loop will take
    cached: bool  # whether the run keeps a KV cache (for a server: asks it to reuse the prefix)


class Picker(Protocol):
    """A backend's own way to pick, declared as `backend.picker` (None: tokenloop's sampler picks).

    What a picker may touch:
    - read `run` (the token ids only through the read-only view);
    - call its backend and keep the backend's own bookkeeping (a server's token table);
    - yield one `Pick` per new token, its `Step` numbered from `run.first`.

    What it may not: append to or rewrite the run's ids, or change the backend's declared data
    (`eos_ids`, ...). What it learns it reports, and the loop applies it:
    - a `Pick` says whether the server ended the run on that token; `steps` returns, when it
      runs out by itself (the stream finished), whether the server ended on the last token it
      gave: either way the loop stops with "eos";
    - `final_ids` gives the new tokens' ids as the run's `Done` carries them, once the steps are
      over (text mode: placeholders of a stream looked up now; elsewhere the ids as they are).
    """

    def steps(self, backend: Any, run: Run) -> Generator[Pick, None, bool]: ...

    def final_ids(self, backend: Any, new: tuple[int, ...]) -> list[int]: ...
