"""The from-scratch forward pass against the transformers model, on the same weights.

Tolerance: both sides compute in float32 from identical weights, so they differ only in the
order of floating-point operations (transformers uses fused scaled-dot-product attention and
its own matmul layout; we write softmax(QK^T/sqrt(d))V out by hand). float32 carries about 7
significant digits; SmolLM2's logits reach about 35 in magnitude, and rounding differences grow
through 30 layers of 576- and 1536-wide sums: we measured a largest difference of about 5e-5.
1e-3 leaves 20x headroom for other CPUs and BLAS builds, while a real mistake (a wrong rotary
base, a head mapped to the wrong key/value group, a missing norm) moves logits by 0.1 or more;
`test_the_tolerance_catches_a_wrong_rotary_base` proves the bound is tight enough to notice.

Modules (src/tokenloop/): model/from_scratch.py, model/weights.py.
"""

import dataclasses
import json

import pytest
import torch

from tokenloop.errors import ModelError
from tokenloop.loop import generate
from tokenloop.model import from_scratch as scratch
from tokenloop.records import Step

TOLERANCE = 1e-3

PROMPTS = [
    "Kubernetes pods are scheduled by the",
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return",
    "Un token n'est pas un mot.",
]


def library_logits(backend, ids):
    with torch.inference_mode():
        return backend.lm(torch.tensor([ids]), use_cache=False).logits[0]


def greedy_library(backend, ids, max_new):
    return [r.chosen.id for r in generate(backend, ids, max_new=max_new, cache=True) if isinstance(r, Step)]


@pytest.fixture(scope="module")
def model(smol):
    return scratch.load(smol.folder)


# --- fast: the tiny random Llama from conftest, same code path -----------------------------
def test_tiny_model_logits_match_with_and_without_cache(tiny, tiny_model_dir):
    model = scratch.load(tiny_model_dir)
    ids = tiny.encode("The scheduler places pods on nodes")
    ours = scratch.forward(model, ids)
    assert (ours - library_logits(tiny, ids)).abs().max() < TOLERANCE
    cache = scratch.new_cache(model)
    scratch.prefill(model, ids[:-2], cache)
    scratch.decode_one(model, ids[-2], cache)
    last = scratch.decode_one(model, ids[-1], cache)
    assert cache.length == len(ids)
    assert (last - ours[-1]).abs().max() < TOLERANCE


PLAIN_LLAMA = {  # the smallest config the plain-Llama reader takes
    "model_type": "llama",
    "vocab_size": 10,
    "hidden_size": 8,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "rms_norm_eps": 1e-5,
}


def test_config_reads_the_rotary_base_from_either_place(tmp_path):
    base = {**PLAIN_LLAMA, "eos_token_id": [3, 4]}
    (tmp_path / "config.json").write_text(
        json.dumps({**base, "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0}})
    )
    config = scratch.Config.from_folder(tmp_path)
    assert config.rope_theta == 100000.0 and config.kv_heads == 2 and config.head_dim == 4 and config.stop_ids == {3, 4}
    (tmp_path / "config.json").write_text(json.dumps({**base, "rope_theta": 500000.0}))
    assert scratch.Config.from_folder(tmp_path).rope_theta == 500000.0


@pytest.mark.parametrize(
    "change", [{"model_type": "gpt2"}, {"attention_bias": True}, {"rope_parameters": {"rope_type": "yarn"}}]
)
def test_other_architectures_are_refused_with_a_clear_error(tmp_path, change):
    config = {**PLAIN_LLAMA, **change}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="scratch.py only knows"):
        scratch.Config.from_folder(tmp_path)


# --- the real embedded model ---------------------------------------------------------------
@pytest.mark.model
def test_the_embedded_model_is_read_as_configured(model):
    c = model.config
    assert (c.layers, c.heads, c.kv_heads, c.head_dim, c.rope_theta, c.tied) == (30, 9, 3, 64, 100000.0, True)
    assert model.head is model.embed


@pytest.mark.model
@pytest.mark.parametrize("prompt", PROMPTS)
def test_logits_match_the_transformers_model(smol, model, prompt):
    ids = smol.encode(prompt)
    ours, theirs = scratch.forward(model, ids), library_logits(smol, ids)
    assert ours.shape == theirs.shape == (len(ids), smol.vocab_size)
    assert (ours - theirs).abs().max().item() < TOLERANCE
    assert torch.equal(ours.argmax(-1), theirs.argmax(-1))


@pytest.mark.model
def test_the_tolerance_catches_a_wrong_rotary_base(smol, model):
    ids = smol.encode(PROMPTS[0])
    wrong = dataclasses.replace(model, config=dataclasses.replace(model.config, rope_theta=10000.0))
    assert (scratch.forward(wrong, ids) - library_logits(smol, ids)).abs().max().item() > 100 * TOLERANCE


@pytest.mark.model
def test_greedy_generation_gives_the_library_loops_tokens(smol, model):
    ids = smol.encode(PROMPTS[0])
    expected = greedy_library(smol, ids, 8)
    assert list(scratch.generate_cached(model, ids, 8)) == expected
    assert list(scratch.generate_uncached(model, ids, 8)) == expected


@pytest.mark.model
def test_greedy_chat_reply_matches_and_stops_at_the_end_token(smol, model):
    ids = smol.encode("Answer with one word: what colour is the sky?", chat=True)
    expected = greedy_library(smol, ids, 24)
    ours = list(scratch.generate_cached(model, ids, 24))
    assert ours == expected
    assert ours[-1] in model.config.stop_ids and len(ours) < 24
