"""The hand-written forecast that statsforecast replaced, kept as a yardstick for the bench.

Daily demand forecasts per SKU from its daily sales, as policies/forecasting.py made them
before: no models from a library, one method chosen by rules.

The method is chosen per series, as a demand planner would:

1. No sales at all (or no history): forecast zero.
2. Intermittent demand, i.e. the average interval between sales days (ADI) above 1.32, the
   Syntetos-Boylan-Croston cut-off: Croston's method with the Syntetos-Boylan bias
   correction (SBA). Promotion-sized sales are capped first.
3. Fewer than three weeks of history: simple exponential smoothing of the cleaned series
   (too short to tell a weekly season from noise).
4. Otherwise: additive Holt-Winters with a damped trend and a weekly season, after promotion
   days (robust outliers) are replaced by their expected value.

Smoothing parameters are fitted by minimising the in-sample one-step squared error over a small
grid (run as one vectorised recursion, so a year of history takes milliseconds). `sigma` is the
root mean squared one-step error of the chosen fit on the cleaned series: the day-to-day
uncertainty safety stock must cover, excluding promotions, which are planned, not random.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

Series = NDArray[np.float64]

SEASON = 7
# Syntetos, Boylan & Croston (2005): above this average demand interval, Croston-type methods win.
INTERMITTENT_ADI = 1.32
MIN_SEASONAL_HISTORY = 3 * SEASON

# A day more than this many robust standard deviations from its expected value is a promotion
# (or a stock-out) and is replaced by the expected value before fitting.
_OUTLIER_SIGMAS = 3.0
# Centred window of the rolling median that estimates the local level: two weeks plus a day
# keeps the median robust to promotions of up to a week.
_LEVEL_WINDOW = 2 * SEASON + 1
# Weeks of history the initial level, trend and season are regressed on.
_INIT_WEEKS = 8

_HW_ALPHA = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
_HW_BETA = (0.0, 0.02, 0.05, 0.1, 0.2)
_HW_GAMMA = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)
_HW_PHI = (0.8, 0.9, 0.95, 0.98)
_SES_ALPHA = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
_CROSTON_ALPHA = (0.05, 0.1, 0.15, 0.2, 0.3)


class Forecast(BaseModel):
    """Expected demand for each of the next days, and the one-day forecast error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: list[float]
    sigma: float = Field(ge=0.0)
    method: str
    parameters: dict[str, float] = Field(default_factory=dict)


def forecast_demand(history: Sequence[float], horizon: int) -> Forecast:
    """Forecast the next `horizon` days of demand from a daily sales series (oldest first).

    Missing days must be given as zeros. Raises ValueError for a horizon below 1 or negative
    or non-finite sales.
    """
    if horizon < 1:
        raise ValueError("horizon must be at least 1 day")
    y = np.asarray(history, dtype=float)
    if y.ndim != 1:
        raise ValueError("history must be a flat sequence of daily quantities")
    if not np.all(np.isfinite(y)) or np.any(y < 0):
        raise ValueError("sales quantities must be finite and non-negative")

    selling_days = int(np.count_nonzero(y))
    if y.size == 0:
        return Forecast(mean=[0.0] * horizon, sigma=0.0, method="no-history")
    if selling_days == 0:
        return Forecast(mean=[0.0] * horizon, sigma=0.0, method="no-demand")
    if y.size / selling_days > INTERMITTENT_ADI:
        return _croston_sba(y, horizon)
    cleaned = clean_outliers(y)
    if y.size < MIN_SEASONAL_HISTORY:
        return _simple_exponential_smoothing(cleaned, horizon)
    return _holt_winters_damped(cleaned, horizon)


def clean_outliers(y: Sequence[float] | Series, season: int = SEASON) -> Series:
    """The series with promotion spikes and stock-out dips replaced by their expected value.

    Expected value = rolling median level + median weekday offset; a day is an outlier when it
    is more than three robust standard deviations (1.4826 x median absolute deviation, at least
    one unit) away from it.
    """
    values = np.asarray(y, dtype=float)
    if values.size < 2 * season:
        baseline = np.full(values.size, float(np.median(values)) if values.size else 0.0)
    else:
        half = _LEVEL_WINDOW // 2
        # Mirror the ends so a promotion on the last days cannot drag the level up with it.
        padded = np.pad(values, half, mode="reflect")
        windows = np.lib.stride_tricks.sliding_window_view(padded, _LEVEL_WINDOW)
        level = np.median(windows, axis=1)
        detrended = values - level
        phase = np.arange(values.size) % season
        offsets = np.array([np.median(detrended[phase == p]) for p in range(season)])
        baseline = level + offsets[phase]
    residual = values - baseline
    spread = max(1.4826 * float(np.median(np.abs(residual - np.median(residual)))), 1.0)
    outlier = np.abs(residual) > _OUTLIER_SIGMAS * spread
    return np.where(outlier, np.maximum(baseline, 0.0), values)


def _holt_winters_damped(y: Series, horizon: int) -> Forecast:
    """Additive damped-trend Holt-Winters, every grid point fitted in one vectorised pass."""
    grid = np.array(
        [
            combo
            for combo in product(_HW_ALPHA, _HW_BETA, _HW_GAMMA, _HW_PHI)
            # Admissible region: the season may not absorb more of an error than the level leaves.
            if combo[2] <= 1.0 - combo[0]
        ]
    )
    alpha, beta, gamma, phi = grid.T
    level0, trend0, season0 = _initial_states(y)
    count = grid.shape[0]
    level = np.full(count, level0)
    trend = np.full(count, trend0)
    seasonal = np.tile(season0, (count, 1))
    squared = np.zeros(count)
    for t, observed in enumerate(y):
        phase = t % SEASON
        predicted = level + phi * trend + seasonal[:, phase]
        error = observed - predicted
        if t >= SEASON:
            squared += error * error
        level = level + phi * trend + alpha * error
        trend = phi * trend + alpha * beta * error
        seasonal[:, phase] += gamma * error

    best = int(np.argmin(squared))
    steps = np.arange(1, horizon + 1)
    damping = np.cumsum(phi[best] ** steps)
    phases = (y.size + steps - 1) % SEASON
    mean = level[best] + damping * trend[best] + seasonal[best, phases]
    sigma = math.sqrt(squared[best] / (y.size - SEASON))
    return Forecast(
        mean=_non_negative(mean),
        sigma=sigma,
        method="holt-winters-damped",
        parameters={
            "alpha": float(alpha[best]),
            "beta": float(beta[best]),
            "gamma": float(gamma[best]),
            "phi": float(phi[best]),
        },
    )


def _initial_states(y: Series) -> tuple[float, float, Series]:
    """Level, trend and weekday offsets from a regression on the first weeks.

    y_t = trend * t + c_weekday fitted by least squares; the level is the mean weekday constant,
    placed one day before the first observation, and the season the offsets from it.
    """
    window = y[: min(y.size, _INIT_WEEKS * SEASON)]
    t = np.arange(window.size, dtype=float)
    design = np.zeros((window.size, SEASON + 1))
    design[:, 0] = t
    design[np.arange(window.size), 1 + (np.arange(window.size) % SEASON)] = 1.0
    coefficients, *_ = np.linalg.lstsq(design, window, rcond=None)
    trend = float(coefficients[0])
    constants = coefficients[1:]
    level = float(constants.mean())
    return level - trend, trend, np.asarray(constants - level, dtype=np.float64)


def _simple_exponential_smoothing(y: Series, horizon: int) -> Forecast:
    alpha = np.asarray(_SES_ALPHA)
    level = np.full(alpha.size, float(y[0]))
    squared = np.zeros(alpha.size)
    for observed in y[1:]:
        error = observed - level
        squared += error * error
        level = level + alpha * error
    best = int(np.argmin(squared))
    sigma = math.sqrt(squared[best] / (y.size - 1)) if y.size > 1 else float(np.sqrt(y[0]))
    return Forecast(
        mean=_non_negative(np.full(horizon, level[best])),
        sigma=sigma,
        method="simple-exponential-smoothing",
        parameters={"alpha": float(alpha[best])},
    )


def _croston_sba(y: Series, horizon: int) -> Forecast:
    """Croston's method with the Syntetos-Boylan approximation: (1 - alpha/2) * size / interval.

    Sizes and intervals are smoothed only on sales days; both start at their averages. Sizes
    above median + 3 robust standard deviations (promotion orders) are capped first.
    """
    positions = np.flatnonzero(y)
    sizes = y[positions]
    spread = max(1.4826 * float(np.median(np.abs(sizes - np.median(sizes)))), 1.0)
    cap = float(np.median(sizes)) + _OUTLIER_SIGMAS * spread
    capped = np.minimum(y, cap)
    intervals = np.diff(positions, prepend=-1).astype(float)

    alpha = np.asarray(_CROSTON_ALPHA)
    size = np.full(alpha.size, float(np.minimum(sizes, cap).mean()))
    interval = np.full(alpha.size, float(intervals.mean()))
    squared = np.zeros(alpha.size)
    counted = 0
    since_last = 0
    for t, observed in enumerate(capped):
        since_last += 1
        if t > positions[0]:
            error = observed - (1.0 - alpha / 2.0) * size / interval
            squared += error * error
            counted += 1
        if observed > 0:
            size = size + alpha * (observed - size)
            interval = interval + alpha * (since_last - interval)
            since_last = 0

    best = int(np.argmin(squared)) if counted else 0
    rate = (1.0 - alpha[best] / 2.0) * size[best] / interval[best]
    sigma = math.sqrt(squared[best] / counted) if counted else float(np.std(capped))
    return Forecast(
        mean=_non_negative(np.full(horizon, rate)),
        sigma=sigma,
        method="croston-sba",
        parameters={"alpha": float(alpha[best])},
    )


def _non_negative(values: Series) -> list[float]:
    return [max(0.0, float(value)) for value in values]
