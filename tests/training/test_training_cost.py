"""What one training step costs beside one inference forward (tokenloop/training/cost.py): FLOPs and
bytes computed from the tiny Llama's config, beside the bytes its real tensors hold, and the times
taken from a run's trace. The whole training run is tests/training/test_teach.py's."""

from __future__ import annotations

import copy
import statistics

import pytest
import torch

from tokenloop.model.config import Shape
from tokenloop.model.estimates import kv_cache_bytes
from tokenloop.training.cost import SavedActivations, cache_tensors, measure_cost, tensor_bytes
from tokenloop.training.teach import TrainStep

TEXT = "The scheduler places pods on nodes."


def step(n: int, ms: float, inference_ms: float) -> TrainStep:
    """A trace record with the times a test chooses (the rest of the run is not under test)."""
    return TrainStep(n, 1.0, ms, ms / 4, ms / 2, ms / 4, inference_ms, 0.1)


@pytest.fixture(scope="module")
def trainable(tiny):
    model = copy.deepcopy(tiny.lm)
    model.requires_grad_(True)
    return model


def test_tensor_bytes_counts_every_tensors_elements_at_their_width_and_nothing_else():
    tensors = [torch.zeros(3, 5), torch.zeros(7, dtype=torch.bfloat16), torch.zeros(2, 2, dtype=torch.int8), None, 4]
    assert tensor_bytes(tensors) == 15 * 4 + 7 * 2 + 4 * 1
    assert tensor_bytes([]) == 0


def test_the_cache_holds_what_the_config_predicts_for_these_tokens(tiny):
    ids = tiny.encode(TEXT)
    with torch.inference_mode():
        cache = tiny.lm(torch.tensor([ids]), use_cache=True).past_key_values
    s = Shape.from_config(tiny.config)
    found = cache_tensors(cache)
    assert len(found) == 2 * s.layers  # a key and a value tensor per layer
    assert all(t.shape[-2:] == (len(ids), s.head_dim) and t.shape[1] == s.kv_heads for t in found)
    assert tensor_bytes(found) == kv_cache_bytes(s.layers, s.kv_heads, s.head_dim, len(ids), 4)


def test_saved_activations_leave_the_weights_out_and_grow_with_the_text(tiny, trainable):
    def saved(n: int) -> int:
        activations = SavedActivations(trainable)
        with activations.hooks():
            trainable(torch.tensor([tiny.encode(TEXT * 4)[:n]]), use_cache=False).logits.sum().backward()
        trainable.zero_grad(set_to_none=True)
        return activations.bytes

    short, long = saved(8), saved(32)
    assert 0 < short < long  # autograd keeps more for more tokens
    frozen = SavedActivations(tiny.lm)  # the served model: no gradients, nothing saved for a backward
    with frozen.hooks(), torch.inference_mode():
        tiny.lm(torch.tensor([tiny.encode(TEXT)]), use_cache=False)
    assert frozen.bytes == 0


def test_cost_puts_flops_and_bytes_from_the_config_beside_the_measured_times(tiny, trainable):
    ids = tiny.encode(TEXT)
    trace = [step(1, 500.0, 10.0), step(2, 40.0, 12.0), step(3, 60.0, 8.0), step(4, 50.0, 11.0)]
    measured = {"gradients": 123, "optimizer": 456, "rss_growth": None}
    cost = measure_cost(tiny, trainable, ids, trace, 789, measured)

    params = sum(p.numel() for p in trainable.parameters())
    assert cost["params"] == cost["matmul_params"] == params  # tied: the embedding is also the output multiply
    assert cost["flops_inference_forward"] == 2 * params * len(ids)
    assert cost["flops_train_step"] == 6 * params * len(ids) == 3 * cost["flops_inference_forward"]
    assert cost["train_step_ms"] == statistics.median([40.0, 60.0, 50.0])  # the first step (optimizer set-up) left out
    assert cost["inference_forward_ms"] == statistics.median([10.0, 12.0, 8.0, 11.0])
    assert cost["ratio"] == pytest.approx(cost["train_step_ms"] / cost["inference_forward_ms"])
    s = Shape.from_config(tiny.config)
    kv = kv_cache_bytes(s.layers, s.kv_heads, s.head_dim, len(ids), cost["dtype_bytes"])
    assert cost["measured_bytes"]["kv_cache"] == kv == cost["inference_bytes"]["kv_cache"]
    assert (
        cost["train_bytes"]["gradients"] == params * cost["dtype_bytes"] and cost["train_bytes"]["activations"] == 789
    )
    assert {k: cost["measured_bytes"][k] for k in measured} == measured and cost["measured_bytes"]["activations"] == 789
