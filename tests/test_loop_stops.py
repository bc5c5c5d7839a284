"""A run that can be stopped from outside (`generate(go_on=...)`): a long prompt goes through the
model in pieces, the answer is the one a single prefill gives, and a stop comes within one piece,
for any prompt length, piece size and moment of the stop. On the tiny real model.

Modules (src/tokenloop/): loop.py."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenloop import loop
from tokenloop.loop import generate
from tokenloop.records import Done, Step

RUNS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Counted:
    """The real backend, with its forward passes counted (every other attribute is the backend's)."""

    def __init__(self, backend):
        self.backend, self.passes, self.tokens_in = backend, 0, []

    def forward(self, ids, cache=None, top_k=8):
        self.passes += 1
        scores = self.backend.forward(ids, cache, top_k)
        self.tokens_in.append(scores.tokens_in)
        return scores

    def __getattr__(self, name):
        return getattr(self.backend, name)


def prompt(n: int) -> list[int]:
    return [(7 * i + 3) % 290 + 1 for i in range(n)]


@RUNS
@given(n=st.integers(2, 56), chunk=st.integers(1, 20), new=st.integers(1, 6))
def test_a_prompt_in_pieces_gives_the_answer_of_one_prefill(tiny, monkeypatch, n, chunk, new):
    monkeypatch.setattr(loop, "PREFILL_CHUNK", chunk)
    whole = [r for r in generate(tiny, prompt(n), new) if isinstance(r, Step)]
    counted = Counted(tiny)
    pieces = [r for r in generate(counted, prompt(n), new, go_on=lambda: True) if isinstance(r, Step)]
    assert max(counted.tokens_in) <= chunk  # no pass took more than a piece of the prompt
    assert sum(counted.tokens_in) == n + len(pieces) - 1  # each prompt token went in once, then one per step
    first_whole = sorted(c.logprob for c in whole[0].top)
    assert sorted(c.logprob for c in pieces[0].top) == pytest.approx(first_whole, abs=1e-4)


@RUNS
@given(n=st.integers(2, 56), chunk=st.integers(1, 20), allowed=st.integers(0, 12))
def test_a_stop_comes_within_one_piece_whatever_the_moment(tiny, monkeypatch, n, chunk, allowed):
    monkeypatch.setattr(loop, "PREFILL_CHUNK", chunk)
    asked = []

    def go_on() -> bool:
        asked.append(1)
        return len(asked) <= allowed

    counted = Counted(tiny)
    records = list(generate(counted, prompt(n), 6, go_on=go_on))
    done = records[-1]
    assert isinstance(done, Done)
    assert counted.passes <= allowed  # no forward pass after go_on said stop
    assert max(counted.tokens_in, default=0) <= chunk  # each pass one piece at most
    if done.stop == "stopped":
        assert len(done.ids) < 6
    else:
        assert done.stop in ("max_new", "eos", "context")
