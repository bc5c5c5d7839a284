"""Fits of time against length (pure): a line, or a line plus n² where an F-test says so, each with
how well it fits. The staircase, the server's staircase and the latency budget all fit with these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# F(1, df) at 5 %: a quadratic term is kept only when it explains significantly more than a line.
F_CRITICAL = {1: 161.4, 2: 18.51, 3: 10.13, 4: 7.71, 5: 6.61, 6: 5.99, 7: 5.59, 8: 5.32, 9: 5.12, 10: 4.96}


@dataclass
class Fit:
    """time(n) ≈ a + b·n (+ c·n²) in milliseconds, with how well it fits the points."""

    a_ms: float
    b_ms_per_token: float
    c_ms_per_token2: float | None
    r2: float
    rmse_ms: float

    def at(self, n: float) -> float:
        return self.a_ms + self.b_ms_per_token * n + (self.c_ms_per_token2 or 0.0) * n * n

    @property
    def formula(self) -> str:
        text = f"{self.a_ms:.1f} ms {_signed(self.b_ms_per_token, 4)} ms × n"
        if self.c_ms_per_token2 is not None:
            text += f" {_signed(self.c_ms_per_token2, 3)} ms × n²"
        return text

    def to_json(self) -> dict:
        return {
            "a_ms": self.a_ms,
            "b_ms_per_token": self.b_ms_per_token,
            "c_ms_per_token2": self.c_ms_per_token2,
            "r2": self.r2,
            "rmse_ms": self.rmse_ms,
            "formula": self.formula,
        }


def _signed(value: float, digits: int) -> str:
    return f"{'-' if value < 0 else '+'} {abs(value):.{digits}g}"


def r_squared(ys: Sequence[float], predicted: Sequence[float]) -> float:
    """1 - (residual variation / total variation): 1 is a perfect fit, 0 no better than the mean."""
    y, p = np.asarray(ys, float), np.asarray(predicted, float)
    ss_res, ss_tot = float(((y - p) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def fit_polynomial(xs: Sequence[float], ys: Sequence[float], degree: int) -> Fit:
    """Least-squares a + b·x (degree 1) or a + b·x + c·x² (degree 2)."""
    if len(xs) < degree + 1:
        raise ValueError(f"a degree-{degree} fit needs at least {degree + 1} points, got {len(xs)}")
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    design = np.vander(x, degree + 1, increasing=True)  # columns 1, x, (x²)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    predicted = design @ coef
    rmse = float(np.sqrt(((y - predicted) ** 2).mean()))
    c = float(coef[2]) if degree == 2 else None
    return Fit(float(coef[0]), float(coef[1]), c, r_squared(y, predicted), rmse)


def quadratic_justified(xs: Sequence[float], ys: Sequence[float], line: Fit, quad: Fit) -> bool:
    """Keep n² only if it is positive (attention grows the work, never shrinks it) and an F-test
    at 5 % says it explains significantly more of the variation than the line does."""
    df = len(xs) - 3
    if df < 1 or quad.c_ms_per_token2 is None or quad.c_ms_per_token2 <= 0:
        return False
    rss_line, rss_quad = len(xs) * line.rmse_ms**2, len(xs) * quad.rmse_ms**2
    if rss_quad == 0.0:
        return rss_line > 0.0
    f = (rss_line - rss_quad) / (rss_quad / df)
    return f > F_CRITICAL.get(df, 3.84)


def fit_uncached(xs: Sequence[float], ys: Sequence[float]) -> Fit:
    """a + b·n, plus c·n² where the data justify it (attention's share grows with n)."""
    line = fit_polynomial(xs, ys, 1)
    if len(xs) < 4:
        return line
    quad = fit_polynomial(xs, ys, 2)
    return quad if quadratic_justified(xs, ys, line, quad) else line


def fit_cached(xs: Sequence[float], ys: Sequence[float]) -> Fit:
    """a + b·n; with a cache b should be near zero (the flat series)."""
    return fit_polynomial(xs, ys, 1)
