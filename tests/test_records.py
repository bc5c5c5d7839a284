"""The records are the only schema: the web API's response models list exactly the fields each
record writes, and a record comes back from its own JSON unchanged."""

import math

import pytest

from tokenloop.records import Candidate, Done, NextToken, Step
from tokenloop.web.schemas import CandidateOut, DoneOut, NextOut, StepOut

A = Candidate(7, " pod", 0.25, math.log(0.25))
B = Candidate(9, "<b>", 0.0, -math.inf)
STEP = Step(
    step=1,
    position=5,
    chosen=A,
    top=[A, B],
    ms=3.5,
    cache=True,
    tokens_in=5,
    processed=[A],
    sampler="T=0.8",
    extra={"server_ms": 2.0, "step": "not a core field"},
)


@pytest.mark.parametrize(
    "record, model",
    [
        (A, CandidateOut),
        (STEP, StepOut),
        (Done(text=" pod", ids=[7], stop="eos", tokens_per_s=10.0, seconds=0.1, prompt_ids=[1, 2]), DoneOut),
        (NextToken(backend="embedded", model="m", prompt_ids=[1], top=[A], ms=1.0), NextOut),
    ],
)
def test_each_response_model_lists_exactly_its_records_fields(record, model):
    assert set(model.model_fields) == set(record.to_json())
    model.model_validate(record.to_json())  # and the record's JSON passes it


def test_backend_extras_sit_under_one_key_and_cannot_overwrite_a_field():
    out = STEP.to_json()
    assert out["step"] == 1 and out["extra"] == {"server_ms": 2.0, "step": "not a core field"}
    assert out["top"][1]["logprob"] is None  # -inf is not JSON


def test_a_step_comes_back_from_its_json():
    again = Step.from_json(STEP.to_json())
    assert again.to_json() == STEP.to_json()
    assert again.top[1].logprob == -math.inf and again.top[1].prob == 0.0


def test_records_are_built_by_keyword():
    with pytest.raises(TypeError):
        Step(1, 5, A, [A], 3.5, True)  # positional arguments are the point: refused


def test_a_run_stops_for_one_of_four_reasons_and_the_code_gives_no_other():
    """`Done.stop` is a Literal; every stop value written in the source is one of it."""
    import re
    from pathlib import Path

    from tokenloop.records import STOPS

    assert STOPS == {"eos", "max_new", "context", "stopped"}
    src = Path(__file__).resolve().parent.parent / "src" / "tokenloop"
    written = {
        value
        for path in src.rglob("*.py")
        for value in re.findall(r"\bstop(?:: Stop)? = \"(\w+)\"", path.read_text())
        + re.findall(r"\bstop = \"(\w+)\" if .* else \"(\w+)\"", path.read_text())
        for value in ([value] if isinstance(value, str) else value)
    }
    assert written and written <= STOPS, written - STOPS
