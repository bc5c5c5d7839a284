"""The fits every staircase draws (tokenloop/measure/fits.py): a line, and a quadratic kept only where
the data curve, each against series made from a known line or curve (moved from test_staircase)."""

import pytest

from tokenloop.measure import fits


def test_line_fit_recovers_a_line():
    xs = [10, 20, 40, 80, 160]
    fit = fits.fit_polynomial(xs, [50 + 2 * x for x in xs], 1)
    assert fit.a_ms == pytest.approx(50) and fit.b_ms_per_token == pytest.approx(2)
    assert fit.r2 == pytest.approx(1.0) and fit.rmse_ms == pytest.approx(0, abs=1e-9)
    assert fit.at(100) == pytest.approx(250)


def test_quadratic_kept_only_when_the_data_curve():
    xs = [32, 64, 128, 256, 512, 1024]
    curved = [50 + 2 * x + 0.002 * x * x for x in xs]
    fit = fits.fit_uncached(xs, curved)
    assert fit.c_ms_per_token2 == pytest.approx(0.002) and "n²" in fit.formula
    wobble = [1.5, -1.0, 2.0, -2.0, 1.0, -1.5]  # noise, no curve
    fit = fits.fit_uncached(xs, [50 + 2 * x + w for x, w in zip(xs, wobble)])
    assert fit.c_ms_per_token2 is None and fit.b_ms_per_token == pytest.approx(2, rel=0.01)
    assert 0.99 < fit.r2 < 1.0


def test_r_squared_of_a_flat_series():
    fit = fits.fit_cached([10, 20, 30, 40], [60.0, 60.4, 59.8, 60.1])
    assert abs(fit.b_ms_per_token) < 0.05 and fit.r2 < 0.5  # flat: the slope explains little
    assert " - " in fits.fit_polynomial([1, 2, 3], [3, 2, 1], 1).formula
