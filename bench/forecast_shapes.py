"""Daily sales series of shapes the project's own generator (app/datagen/sales.py) does not make.

A separate generator, so that the forecast is not only judged on data written together with it:

- `trend-break`: a steady seller whose trend turns (growth stops, or decline sets in) at a
  random day in the last third of the history.
- `zero-heavy`: slow movers selling on 3 to 25 % of days, in lumps (negative binomial sizes),
  some with a demand rate that drifts.
- `short-history`: products launched 5 to 10 weeks ago, with a weekly pattern and noise.
- `seasonal-shift`: a strong weekly pattern whose level jumps up or down by 30 to 60 % a few
  weeks before the end (a listing change, a competitor's stock-out).

Each shape is one seeded numpy Generator: a seed always gives the same series.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SHAPES = ("trend-break", "zero-heavy", "short-history", "seasonal-shift")

_WEEK_SHAPES = (
    np.array([0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 0.9]),
    np.array([1.3, 1.2, 1.1, 1.0, 0.9, 0.6, 0.9]),
)


def _counts(rng: np.random.Generator, mean: np.ndarray) -> list[float]:
    """Negative binomial counts around `mean` (dispersion varies per SKU)."""
    size = rng.uniform(3.0, 15.0)
    p = size / (size + np.maximum(mean, 1e-9))
    return rng.negative_binomial(size, p).astype(float).tolist()


def _weekly(rng: np.random.Generator, days: int) -> np.ndarray:
    week = _WEEK_SHAPES[int(rng.integers(len(_WEEK_SHAPES)))]
    strength = rng.uniform(0.5, 1.2)
    offset = int(rng.integers(7))
    return 1.0 + strength * (week[(np.arange(days) + offset) % 7] - 1.0)


def trend_break(rng: np.random.Generator, days: int) -> list[float]:
    t = np.arange(days, dtype=float)
    base = rng.uniform(8.0, 80.0)
    before = rng.uniform(-0.002, 0.004)
    after = rng.choice([0.0, rng.uniform(-0.008, -0.003), rng.uniform(0.004, 0.01)])
    cut = int(rng.integers(2 * days // 3, days - 21))
    slope = np.where(t < cut, before * t, before * cut + after * (t - cut))
    return _counts(rng, np.maximum(0.2, base * (1.0 + slope)) * _weekly(rng, days))


def zero_heavy(rng: np.random.Generator, days: int) -> list[float]:
    chance = rng.uniform(0.03, 0.25)
    drift = np.linspace(1.0, rng.uniform(0.5, 1.8), days)
    sells = rng.random(days) < np.clip(chance * drift, 0.0, 0.9)
    lumps = 1 + rng.negative_binomial(1.5, 1.5 / (1.5 + rng.uniform(0.5, 4.0)), size=days)
    return np.where(sells, lumps, 0).astype(float).tolist()


def short_history(rng: np.random.Generator, days: int) -> list[float]:
    length = min(days, int(rng.integers(35, 71)))
    base = rng.uniform(4.0, 50.0)
    ramp = 1.0 - 0.5 * np.exp(-np.arange(length) / rng.uniform(3.0, 15.0))  # launch ramp-up
    return _counts(rng, base * ramp * _weekly(rng, length))


def seasonal_shift(rng: np.random.Generator, days: int) -> list[float]:
    base = rng.uniform(10.0, 100.0)
    jump = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.6)
    cut = days - int(rng.integers(28, 57))
    level = np.where(np.arange(days) < cut, base, base * (1.0 + jump))
    return _counts(rng, level * _weekly(rng, days))


_GENERATORS: dict[str, Callable[[np.random.Generator, int], list[float]]] = {
    "trend-break": trend_break,
    "zero-heavy": zero_heavy,
    "short-history": short_history,
    "seasonal-shift": seasonal_shift,
}


def generate_shape(
    shape: str, *, skus: int = 8, days: int = 240, seed: int = 11
) -> dict[str, list[float]]:
    """`skus` series of one shape, keyed `<shape>-<n>`, each starting at its first sale."""
    if shape not in _GENERATORS:
        raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")
    rng = np.random.default_rng([seed, SHAPES.index(shape)])
    series = {}
    for index in range(skus):
        values = _GENERATORS[shape](rng, days)
        first = next((i for i, q in enumerate(values) if q > 0), len(values))
        series[f"{shape}-{index + 1}"] = values[first:]
    return series
