"""The noise rule (`measure/noise.py`): an effect counts only when the ranges of repeats don't overlap."""

from tokenloop.measure import noise


def test_an_effect_within_the_spread_is_unclear():
    # -7% on the medians, but the runs overlap: the machine's noise, not a result
    verdict = noise.effect([40.0, 55.0, 48.0], [38.0, 52.0, 44.0])
    assert verdict["verdict"] == "unclear"
    assert verdict["change"] < 0
    assert verdict["why"] == "the two ranges of repeats overlap"


def test_an_effect_beyond_the_spread_is_clear_both_ways():
    assert noise.effect([40.0, 41.0, 42.0], [50.0, 51.0, 55.0])["verdict"] == "higher"
    assert noise.effect([50.0, 51.0], [40.0, 42.0])["verdict"] == "lower"


def test_one_run_shows_no_spread_so_it_can_not_tell():
    assert noise.effect([40.0], [80.0])["verdict"] == "unclear"


def test_the_size_is_the_ratio_of_medians():
    verdict = noise.effect([10.0, 10.0, 1000.0], [20.0, 20.0, 21.0])
    assert verdict["before"] == {"median": 10.0, "low": 10.0, "high": 1000.0, "runs": 3}
    assert verdict["change"] == 1.0


def test_lesson_7_step_3_reports_a_within_noise_change_as_unclear_not_as_minus_7_percent():
    """The walk's case: one visit measured -7% for a longer context. As `cost/context.py` reports it."""
    from tokenloop.cost import context

    r = context.result([8, 32], {8: [40.0, 55.0, 48.0], 32: [38.0, 52.0, 44.6]}, 3)
    assert r["effect"]["verdict"] == "unclear"
    assert round(100 * (r["ratio"] - 1)) == -7  # the medians' change, kept in the JSON, not graded
    assert r["points"][0] | {"samples_ms": None} == {
        "context": 8,
        "ms": 48.0,
        "low_ms": 40.0,
        "high_ms": 55.0,
        "spread_ms": 15.0,
        "samples_ms": None,
    }
