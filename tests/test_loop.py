"""The loop on a tiny random model: the real loading and loop code, in milliseconds.

Modules (src/tokenloop/): loop.py, backends/picker.py, backends/tokenizer.py, backends/embedded.py, scores.py."""

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
    assert torch.allclose(with_cache.values, without.values, atol=1e-5)


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
    served = Scores(torch.tensor([-0.1, -2.5, -4.0]), support=torch.tensor([42, 7, 9]))
    picked = candidates(tiny, served, Distribution.raw(served), 2)
    assert [(c.id, c.logprob) for c in picked] == [(42, pytest.approx(-0.1)), (7, pytest.approx(-2.5))]


def test_the_cached_loop_uses_transformers_current_cache_argument(tiny):
    """No deprecation warning on every embedded run (transformers renamed past_key_values to cache)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        list(generate(tiny, prompt_ids(tiny, "The model predicts"), max_new=3, cache=True))


def test_a_picker_reads_the_loops_ids_and_cannot_rewrite_them(tiny_model_dir):
    """A picker (the server's way to pick) sees the ids read-only; only the loop appends."""
    from tokenloop.backends.picker import Pick
    from tokenloop.records import Candidate

    seen, refused = [], []

    class Rewriter:
        def steps(self, backend, run):
            for number in range(run.first, run.first + 3):
                seen.append(list(run.ids))
                try:
                    run.ids.append(0)
                except AttributeError as e:
                    refused.append(type(e))
                try:
                    run.ids[len(ids) :] = []
                except TypeError as e:
                    refused.append(type(e))
                token = Candidate(number, f"t{number}", 1.0, 0.0)
                yield Pick(Step(step=number, position=len(run.ids), chosen=token, top=[token], ms=0.0, cache=False))
            return False

        def final_ids(self, backend, new):
            return list(new)

    tiny = own_tiny(tiny_model_dir)
    tiny.picker = Rewriter()
    ids = prompt_ids(tiny, "pods")
    steps, done = run(tiny, ids, max_new=3)
    assert refused == [AttributeError, TypeError] * 3  # no append, no slice assignment
    assert seen == [ids, ids + [1], ids + [1, 2]]  # the picker saw the ids grow as the loop appended
    assert done.prompt_ids == ids and done.ids == [1, 2, 3] and done.stop == "max_new"


def test_a_picker_reports_its_end_token_and_its_final_ids_and_the_loop_applies_them(tiny_model_dir):
    """A stream that ends on a token the model's end tokens don't list stops with "eos"; the
    picker's final ids (text mode's placeholders looked up) are what Done carries."""
    from tokenloop.backends.picker import Pick
    from tokenloop.records import Candidate

    class Streamer:
        def steps(self, backend, run):
            for number, token_id in enumerate((-2, -3), run.first):
                token = Candidate(token_id, "x", 1.0, 0.0)
                yield Pick(Step(step=number, position=len(run.ids), chosen=token, top=[token], ms=0.0, cache=True))
            return True  # the server said "stop" after the last one

        def final_ids(self, backend, new):
            return [{-2: 11, -3: 12}[i] for i in new]

    tiny = own_tiny(tiny_model_dir)
    tiny.picker = Streamer()
    steps, done = run(tiny, prompt_ids(tiny, "pods"), max_new=10)
    assert [s.chosen.id for s in steps] == [-2, -3]
    assert done.stop == "eos" and done.ids == [11, 12]


def test_a_paused_run_resumes_from_its_cache_generator_and_step_number(tiny):
    from tokenloop.loop import Paused
    from tokenloop.sampling import make_generator

    ids = prompt_ids(tiny, "The model")
    sampler = Sampler(temperature=0.9)
    whole, _ = run(tiny, ids, max_new=4, sampler=sampler, seed=5)
    generator, cache = make_generator(5), tiny.new_cache()
    first, _ = run(tiny, ids, max_new=2, sampler=sampler, resume=Paused(cache, generator))
    grown = ids + [s.chosen.id for s in first]
    rest, _ = run(tiny, grown, max_new=2, sampler=sampler, resume=Paused(cache, generator, step=3))
    assert [s.chosen.id for s in first + rest] == [s.chosen.id for s in whole]
    assert [s.step for s in rest] == [3, 4] and rest[0].tokens_in == 1  # only the token the cache has not seen


@pytest.mark.parametrize("sampler", [Sampler(1.0, top_k=2), Sampler(1.0, top_p=0.05)])
def test_the_processed_bars_hold_only_what_the_sampler_kept(tiny, sampler):
    """After top-k or top-p the cut tokens have probability 0: they are not padded in as candidates
    (issue 24: special tokens at 0.0% below the kept ones). Scores.candidates, tokenloop/scores.py."""
    steps = [r for r in generate(tiny, [1, 2, 3], 3, sampler, seed=0, show=8) if isinstance(r, Step)]
    for s in steps:
        assert s.processed and all(c.prob > 0 for c in s.processed)
        assert len(s.processed) <= (sampler.top_k or 8) and len(s.top) == 8  # the raw bars keep all 8
