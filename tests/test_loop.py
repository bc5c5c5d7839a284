"""The loop on a tiny random model: the real loading and loop code, in milliseconds.

Modules (src/tokenloop/): loop.py, backends/embedded.py, scores.py."""

import pytest
import torch

from tokenloop.errors import UsageError
from tokenloop.loop import generate, next_token, prompt_ids
from tokenloop.records import Done, Step
from tokenloop.sampling import Sampler


def run(backend, ids, **kw):
    records = list(generate(backend, ids, **kw))
    steps = [r for r in records if isinstance(r, Step)]
    assert isinstance(records[-1], Done) and all(isinstance(r, Step) for r in records[:-1])
    return steps, records[-1]


def test_cached_and_uncached_loops_pick_the_same_tokens(tiny):
    ids = prompt_ids(tiny, "The scheduler places pods")
    cached, done_c = run(tiny, ids, max_new=12, cache=True)
    uncached, done_u = run(tiny, ids, max_new=12, cache=False)
    assert [s.chosen.id for s in cached] == [s.chosen.id for s in uncached]
    assert done_c.ids == done_u.ids
    for a, b in zip(cached, uncached):
        assert a.chosen.prob == pytest.approx(b.chosen.prob, abs=1e-4)


def own_tiny(folder, eos=()):
    """A tiny model of the test's own, with the end tokens it needs (the shared one stays as it is)."""
    from tokenloop.backends.embedded import EmbeddedBackend

    backend = EmbeddedBackend(str(folder))
    backend.eos_ids = frozenset(eos)
    return backend


def test_work_per_step_grows_without_cache_and_is_one_token_with_it(tiny_model_dir):
    tiny = own_tiny(tiny_model_dir)  # no end token: it runs the full length
    ids = prompt_ids(tiny, "The model predicts")
    cached, _ = run(tiny, ids, max_new=6, cache=True)
    uncached, _ = run(tiny, ids, max_new=6, cache=False)
    assert [s.tokens_in for s in uncached] == [len(ids) + i for i in range(6)]
    assert [s.tokens_in for s in cached] == [len(ids)] + [1] * 5
    assert [s.position for s in cached] == [len(ids) + i for i in range(6)]


def test_stops_at_the_end_token(tiny, tiny_model_dir):
    ids = prompt_ids(tiny, "A token is")
    first, _ = run(tiny, ids, max_new=1)
    steps, done = run(own_tiny(tiny_model_dir, {first[0].chosen.id}), ids, max_new=10)
    assert len(steps) == 1 and done.stop == "eos"


def test_stops_at_max_new_and_at_the_context_limit(tiny_model_dir):
    tiny = own_tiny(tiny_model_dir)
    steps, done = run(tiny, prompt_ids(tiny, "pods"), max_new=3)
    assert len(steps) == 3 and done.stop == "max_new"
    long = prompt_ids(tiny, "the scheduler " * 20)
    steps, done = run(tiny, long, max_new=100)
    assert done.stop == "context"
    assert len(long) + len(steps) == tiny.context_length


def test_cache_follows_a_branch(tiny):
    """Changing an earlier token (the lab's branching) crops the cache; scores stay exact."""
    cache = tiny.new_cache()
    ids = prompt_ids(tiny, "The scheduler places pods on nodes")
    tiny.forward(ids, cache)
    branch = ids[:-2] + [ids[-1]]
    with_cache = tiny.forward(branch, cache)
    assert with_cache.tokens_in == 1
    without = tiny.forward(branch, None)
    assert torch.allclose(with_cache.logits, without.logits, atol=1e-5)


def test_next_token_lists_k_candidates_most_likely_first(tiny):
    result = next_token(tiny, prompt_ids(tiny, "The model"), k=5)
    probs = [c.prob for c in result.top]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True)
    assert 0 <= result.other <= 1 and abs(sum(probs) + result.other - 1) < 1e-5


def test_sampled_steps_show_the_processed_distribution(tiny):
    steps, _ = run(tiny, prompt_ids(tiny, "The model"), max_new=3, sampler=Sampler(temperature=0.7, top_k=3), seed=3)
    for s in steps:
        assert s.processed is not None and len([c for c in s.processed if c.prob > 0]) <= 3
        assert s.chosen.id in [c.id for c in s.processed if c.prob > 0]
        assert s.sampler == "T=0.7 top_k=3"


def test_bad_prompts(tiny):
    with pytest.raises(UsageError, match="empty"):
        prompt_ids(tiny, "   ")
    with pytest.raises(UsageError, match="shorten"):
        prompt_ids(tiny, "the scheduler places pods " * 50)


def test_distribution_reports_the_softmax_without_building_it(tiny):
    from tokenloop.scores import Distribution, Scores, candidates

    logits = torch.randn(tiny.vocab_size, generator=torch.Generator().manual_seed(0)) * 5
    raw = Distribution.raw(Scores(logits))
    probs, logprobs = torch.softmax(logits, 0), torch.log_softmax(logits, 0)
    top = candidates(tiny, Scores(logits), raw, 5)
    assert [c.id for c in top] == torch.topk(probs, 5).indices.tolist()
    assert [c.prob for c in top] == pytest.approx(torch.topk(probs, 5).values.tolist(), rel=1e-5)
    assert (
        raw.logprob(7) == pytest.approx(float(logprobs[7]), abs=1e-5)
        and raw.rank(int(probs.argmin())) == tiny.vocab_size
    )
    # A server's top-k is already log-probabilities over part of the vocabulary: kept as they are.
    served = Scores(torch.tensor([-0.1, -2.5, -4.0]), ids=torch.tensor([42, 7, 9]))
    picked = candidates(tiny, served, Distribution.raw(served), 2)
    assert [(c.id, c.logprob) for c in picked] == [(42, pytest.approx(-0.1)), (7, pytest.approx(-2.5))]


def test_the_cached_loop_uses_transformers_current_cache_argument(tiny):
    """No deprecation warning on every embedded run (transformers renamed past_key_values to cache)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        list(generate(tiny, prompt_ids(tiny, "The model predicts"), max_new=3, cache=True))
