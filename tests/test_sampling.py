"""The sampling functions alone: pure, seeded, and exact about what they keep."""

import math

import pytest
import torch

from tokenloop import sampling
from tokenloop.errors import UsageError
from tokenloop.sampling import Sampler


def test_distribution_is_softmax_and_sums_to_one():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    probs = sampling.distribution(logits)
    assert torch.allclose(probs.sum(), torch.tensor(1.0))
    assert torch.allclose(probs, torch.exp(logits) / torch.exp(logits).sum())
    assert torch.allclose(sampling.log_distribution(logits).exp(), probs)


def test_top_p_keeps_smallest_set_reaching_p():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log()
    kept = sampling.keep_top_p(logits, 0.8) > float("-inf")
    assert kept.tolist() == [True, True, False, False]  # 0.5 + 0.3 reaches 0.8
    kept = sampling.keep_top_p(logits, 0.81) > float("-inf")
    assert kept.tolist() == [True, True, True, False]
    kept = sampling.keep_top_p(logits, 0.4) > float("-inf")
    assert kept.tolist() == [True, False, False, False]
    # Order of the support does not matter.
    shuffled = torch.tensor([0.05, 0.3, 0.5, 0.15]).log()
    assert (sampling.keep_top_p(shuffled, 0.8) > float("-inf")).tolist() == [False, True, True, False]


def test_top_k_and_processed_distribution_renormalises():
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0])
    probs = sampling.process(logits, Sampler(temperature=1.0, top_k=2))
    assert probs[2:].sum() == 0
    assert torch.allclose(probs.sum(), torch.tensor(1.0))
    assert torch.allclose(probs[:2], torch.softmax(logits[:2], -1))


def test_temperature_sharpens_and_flattens():
    logits = torch.tensor([2.0, 1.0, 0.0])
    cold = sampling.process(logits, Sampler(temperature=0.5))
    hot = sampling.process(logits, Sampler(temperature=2.0))
    assert cold[0] > sampling.distribution(logits)[0] > hot[0]


def test_greedy_is_argmax_and_tiny_temperature_matches_it():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1000, generator=gen)
    index, processed = sampling.pick(logits, Sampler())
    assert index == int(logits.argmax()) and processed is None
    for seed in range(5):
        picked, _ = sampling.pick(logits, Sampler(temperature=1e-4), sampling.make_generator(seed))
        assert picked == index


def test_seeded_sampling_is_reproducible_and_varies_by_seed():
    logits = torch.zeros(50)
    sampler = Sampler(temperature=1.0)

    def draws(seed):
        gen = sampling.make_generator(seed)
        return [sampling.pick(logits, sampler, gen)[0] for _ in range(20)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


@pytest.mark.parametrize(
    "kwargs", [{"temperature": -0.1}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}, {"temperature": float("nan")}]
)
def test_bad_sampler_values_are_refused(kwargs):
    with pytest.raises(UsageError):
        Sampler(**kwargs)


@pytest.mark.parametrize("case", ["spread", "ties", "mostly -inf", "flat", "peaked"])
def test_top_indices_are_torch_topk_with_ties_lower_index_first(case):
    gen = torch.Generator().manual_seed(len(case))
    for _ in range(200):
        n = int(torch.randint(1, 2000, (1,), generator=gen))
        k = int(torch.randint(1, 12, (1,), generator=gen))
        x = torch.randn(n, generator=gen) * 6
        if case == "ties":
            x = x.round()
        elif case == "mostly -inf":
            x[torch.rand(n, generator=gen) < 0.95] = float("-inf")
        elif case == "flat":
            x = torch.zeros(n)
        elif case == "peaked":
            x[int(torch.randint(0, n, (1,), generator=gen))] = 40.0
        got = sampling.top_indices(x, k)
        assert len(got) == len(set(got)) == min(k, n)
        assert torch.equal(x[got], torch.topk(x, min(k, n)).values)
        if case in ("ties", "flat"):
            assert all(a < b for a, b, va, vb in zip(got, got[1:], x[got], x[got][1:]) if va == vb)


def test_log_normalizer_is_logsumexp_and_greedy_pick_is_the_first_top_index():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(49152, generator=gen) * 4
    assert sampling.log_normalizer(logits) == pytest.approx(float(torch.logsumexp(logits, 0)), abs=1e-4)
    assert sampling.log_normalizer(torch.tensor([1000.0, 1000.0])) == pytest.approx(1000 + math.log(2))  # no overflow
    assert sampling.log_normalizer(torch.full((3,), float("-inf"))) == float("-inf")
    index, _ = sampling.pick(logits, Sampler())
    assert index == sampling.top_indices(logits, 1)[0] == int(torch.argmax(logits))
