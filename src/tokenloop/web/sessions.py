"""Per-browser state: the lab's run (each learner their own token ids and KV cache), and the
lessons' measurements: those kept for a revisit and those running (`jobs.py`).

A browser is known by a random cookie. The store keeps at most `limit` sessions and forgets
the one used longest ago when a new one arrives, so memory stays bounded however many tabs
connect. The shared model is protected by the backend's own lock; a session's lock keeps one
learner's Step, Run and Branch requests from interleaving half-way through a step.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..records import Step

COOKIE = "tokenloop_session"


@dataclass
class Session:
    """One learner's lab: the prompt, the token ids so far and the records of each step."""

    id: str
    prompt: str = ""
    chat: bool = False
    prompt_ids: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)  # prompt ids followed by the generated ids
    steps: list[Step] = field(default_factory=list)  # the record of every generated token (JSON only at the edge)
    cache: Any = None  # the backend's KV cache for `ids` (None: no run yet, or a run without one)
    cached: bool = True  # whether this run keeps a KV cache (the lab's "KV cache" box)
    seed: int | None = None
    generator: Any = None  # torch.Generator for seeded sampling
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    kept: dict[str, dict] = field(default_factory=dict)  # measured results, by "lesson:live key" or a demo's name
    jobs: dict[str, Any] = field(default_factory=dict)  # the measurements running or last run, by the same keys

    @property
    def started(self) -> bool:
        return bool(self.prompt_ids)


class SessionStore:
    """At most `limit` sessions, least recently used evicted first."""

    def __init__(self, limit: int = 32):
        self.limit = limit
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str | None) -> Session:
        """The session for this cookie, or a new one (the client never picks an id)."""
        with self._lock:
            session = self._sessions.get(session_id or "")
            if session is None:
                session = Session(secrets.token_urlsafe(18))
                self._sessions[session.id] = session
                while len(self._sessions) > self.limit:
                    self._sessions.popitem(last=False)
            self._sessions.move_to_end(session.id)
            return session

    def find(self, session_id: str | None) -> Session | None:
        """The session for this cookie if there is one; unlike `get`, never makes or evicts one."""
        with self._lock:
            return self._sessions.get(session_id or "")

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions
