"""Daily demand forecasts per SKU from its daily sales: what replenishment plans stock with.

The forecast is a combination of statsforecast models and a damped Holt-Winters, not a choice
among them: combined forecasts are steadier than any one model on series no one has seen, and
picking a winner on a few noisy hold-out windows (what this module did before) lost to AutoETS
alone on three of five kinds of series.

1. No sales at all (or no history): forecast zero.
2. Regular demand: the day-by-day median of five. AutoETS, AutoETS with a damped trend and the
   dynamic optimised Theta fitted on the last year as sold (but for unmistakable promotions,
   see `_without_promotions`); a damped additive Holt-Winters on the last year after promotion
   days (robust outliers) are replaced by their expected value; and the dynamic optimised
   Theta on the cleaned last half year, which follows a recent level shift or trend break
   sooner.
3. Intermittent demand (average interval between sales days, ADI, above 1.32, the
   Syntetos-Boylan-Croston cut-off): the mean of AutoETS and AutoCES on the last year with
   promotion-sized orders capped.
4. Shorter than two weeks: the mean of the last weeks (Croston-SBA when intermittent).

`method` names the combined models joined by `+`. `sigma` is the root mean squared one-step
in-sample error of the combined fit against the cleaned series: the day-to-day uncertainty
safety stock must cover, excluding promotions, which are planned, not random.

statsforecast (with pandas and scipy behind it) takes about two seconds to import, so it is
imported on the first forecast, not with this module: the command line and anything that only
needs the `Forecast` model stay light, and the workflow sandbox never loads it. Its models are
compiled ahead of time (C++), so there is no just-in-time compilation to cache between runs.

`seasonal_naive` and `mase` are the yardstick the back-test measures the method against, beside
AutoETS on its own.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from itertools import product
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

Series = NDArray[np.float64]

SEASON = 7
# Syntetos, Boylan & Croston (2005): above this average demand interval, Croston-type methods win.
INTERMITTENT_ADI = 1.32
# Days of history the models are fitted on at most: a year. No model here has a yearly season,
# and fitting time grows with the length (None fits on all of it).
MAX_FIT_DAYS: int | None = 52 * SEASON
# Days the recent member of the regular combination is fitted on: half a year.
RECENT_FIT_DAYS = 26 * SEASON
# Below this, too few weeks to fit a weekly season: the recent mean (or Croston-SBA) instead.
MIN_HISTORY = 2 * SEASON
# Days the mean fallback averages over.
MEAN_WINDOW = 4 * SEASON
# Promotion cleaning measured on bench/forecast_accuracy.py: see `clean_promotions` below.
CLEAN_PROMOTIONS = True

# A day more than this many robust standard deviations from its expected value is a promotion
# (or a stock-out) and is replaced by the expected value before fitting.
_OUTLIER_SIGMAS = 3.0
# The members fitted on the series as sold have only unmistakable promotions removed: runs of at
# least this many days, each this many robust deviations above the expected value, with their
# neighbouring days above the edge threshold. Full cleaning (every day three deviations out)
# also removed the ordinary high days of skewed sellers and the first days after a level
# shift, and biased these members low on series without promotions; no cleaning let a
# promotion on the last days lift them, and with them the median, straight into the forecast.
_PROMOTION_RUN = 2
_PROMOTION_SIGMAS = 5.0
_PROMOTION_EDGE_SIGMAS = 2.0
# Centred window of the rolling median that estimates the local level: two weeks plus a day
# keeps the median robust to promotions of up to a week.
_LEVEL_WINDOW = 2 * SEASON + 1
# Damped Holt-Winters grid: smoothing of level, trend and season, and the trend damping.
_HW_ALPHA = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
_HW_BETA = (0.0, 0.02, 0.05, 0.1, 0.2)
_HW_GAMMA = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)
_HW_PHI = (0.8, 0.9, 0.95, 0.98)
# Weeks of history Holt-Winters' initial level, trend and season are regressed on.
_HW_INIT_WEEKS = 8


class Forecast(BaseModel):
    """Expected demand for each of the next days, and the one-day forecast error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: list[float]
    sigma: float = Field(ge=0.0)
    method: str
    parameters: dict[str, float] = Field(default_factory=dict)
    # Forecast with the intermittent-demand combination (the ADI is above the cut-off).
    intermittent: bool = False


class BacktestResult(BaseModel):
    """Hold-out accuracy of one series: MASE of the method, of seasonal naive and of AutoETS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str
    intermittent: bool
    mase: float
    mase_seasonal_naive: float
    mase_auto_ets: float


def forecast_demand(
    history: Sequence[float], horizon: int, *, clean_promotions: bool | None = None
) -> Forecast:
    """Forecast the next `horizon` days of demand from a daily sales series (oldest first).

    Missing days must be given as zeros. Raises ValueError for a horizon below 1 or negative
    or non-finite sales. `clean_promotions` overrides `CLEAN_PROMOTIONS` (for measuring it).
    """
    if horizon < 1:
        raise ValueError("horizon must be at least 1 day")
    y = np.asarray(history, dtype=float)
    if y.ndim != 1:
        raise ValueError("history must be a flat sequence of daily quantities")
    if not np.all(np.isfinite(y)) or np.any(y < 0):
        raise ValueError("sales quantities must be finite and non-negative")
    clean = CLEAN_PROMOTIONS if clean_promotions is None else clean_promotions
    if MAX_FIT_DAYS is not None:
        y = y[-MAX_FIT_DAYS:]

    selling_days = int(np.count_nonzero(y))
    if y.size == 0:
        return Forecast(mean=[0.0] * horizon, sigma=0.0, method="no-history")
    if selling_days == 0:
        return Forecast(mean=[0.0] * horizon, sigma=0.0, method="no-demand")
    if y.size / selling_days > INTERMITTENT_ADI:
        series = cap_promotion_orders(y) if clean else y
        if y.size < MIN_HISTORY:
            forecast = _single("croston-sba", _statsforecast(_croston_sba), series, horizon)
        else:
            forecast = _combine(_intermittent_members(series), series, horizon, np.mean)
        return forecast.model_copy(update={"intermittent": True})
    series = clean_outliers(y) if clean else y
    if y.size < MIN_HISTORY:
        return _single("window-mean", _window_mean(MEAN_WINDOW), series, horizon)
    sold = _without_promotions(y) if clean else y
    return _combine(_regular_members(sold, series), series, horizon, np.median)


def seasonal_naive(series: Sequence[float], horizon: int, season: int = SEASON) -> list[float]:
    """Repeat the last full season; the last value when the series is shorter than a season."""
    if horizon < 1:
        raise ValueError("horizon must be at least 1 day")
    if season < 1:
        raise ValueError("season must be at least 1")
    values = [float(value) for value in series]
    if not values:
        raise ValueError("seasonal naive needs at least one observation")
    if len(values) < season:
        return [values[-1]] * horizon
    last_season = values[-season:]
    return [last_season[step % season] for step in range(horizon)]


def mase(
    actual: Sequence[float],
    forecast: Sequence[float],
    training: Sequence[float],
    season: int = SEASON,
) -> float:
    """Mean absolute scaled error: forecast MAE over the in-sample seasonal naive MAE.

    Below 1 the forecast beats the in-sample seasonal naive forecast. When the training series
    is too short for a seasonal scale or its seasonal differences are all zero, the one-step
    naive MAE scales instead; a constant training series gives 0.0 for a perfect forecast and
    infinity otherwise.
    """
    a = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    train = np.asarray(training, dtype=float)
    if a.shape != f.shape or a.ndim != 1 or a.size == 0:
        raise ValueError("actual and forecast must be non-empty and of equal length")
    if train.size < 2:
        raise ValueError("training needs at least two observations to scale the error")
    error = float(np.mean(np.abs(a - f)))
    scale = 0.0
    if train.size > season:
        scale = float(np.mean(np.abs(train[season:] - train[:-season])))
    if scale == 0.0:
        scale = float(np.mean(np.abs(np.diff(train))))
    if scale == 0.0:
        return 0.0 if error == 0.0 else math.inf
    return error / scale


def backtest(
    series: Sequence[float],
    horizon: int,
    season: int = SEASON,
    *,
    clean_promotions: bool | None = None,
) -> BacktestResult:
    """Hold out the last `horizon` days, forecast them from the rest, and score the forecasts.

    Scored: the chosen method, seasonal naive and AutoETS alone (on the uncleaned history, as
    it would be run off the shelf), all against the same hold-out and training scale.
    """
    values = [float(value) for value in series]
    if horizon < 1:
        raise ValueError("horizon must be at least 1 day")
    if len(values) - horizon < 2 * season:
        raise ValueError(
            f"a {horizon}-day hold-out needs at least {horizon + 2 * season} days of history, "
            f"got {len(values)}"
        )
    training, actual = values[:-horizon], values[-horizon:]
    forecast = forecast_demand(training, horizon, clean_promotions=clean_promotions)
    naive = seasonal_naive(training, horizon, season)
    ets = auto_ets_forecast(training, horizon)
    return BacktestResult(
        method=forecast.method,
        intermittent=forecast.intermittent,
        mase=mase(actual, forecast.mean, training, season),
        mase_seasonal_naive=mase(actual, naive, training, season),
        mase_auto_ets=mase(actual, ets, training, season),
    )


def auto_ets_forecast(series: Sequence[float], horizon: int) -> list[float]:
    """statsforecast's AutoETS with a weekly season on the series as given: the benchmark."""
    from statsforecast.models import AutoETS

    y = np.asarray(series, dtype=float)
    if not np.any(y):
        return [0.0] * horizon
    result = AutoETS(season_length=SEASON).forecast(y, horizon)
    return _non_negative(np.asarray(result["mean"], dtype=float))


def clean_outliers(y: Sequence[float] | Series, season: int = SEASON) -> Series:
    """The series with promotion spikes and stock-out dips replaced by their expected value.

    Expected value = rolling median level + median weekday offset; a day is an outlier when it
    is more than three robust standard deviations (1.4826 x median absolute deviation, at least
    one unit) away from it.
    """
    values = np.asarray(y, dtype=float)
    outlier, baseline = _outliers(values, season, _OUTLIER_SIGMAS)
    return np.where(outlier, np.maximum(baseline, 0.0), values)


def _outliers(values: Series, season: int, sigmas: float) -> tuple[NDArray[np.bool_], Series]:
    """Which days lie more than `sigmas` robust deviations from their expected value, and it."""
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
    return np.abs(residual) > sigmas * spread, baseline


def _without_promotions(y: Series) -> Series:
    """The series with its promotions replaced by their expected value.

    A promotion is a run of at least `_PROMOTION_RUN` days each `_PROMOTION_SIGMAS` robust
    deviations above the expected value, together with the days next to it that are above
    `_PROMOTION_EDGE_SIGMAS` (its weaker first and last days).
    """
    strong, baseline = _outliers(y, SEASON, _PROMOTION_SIGMAS)
    weak, _ = _outliers(y, SEASON, _PROMOTION_EDGE_SIGMAS)
    above = y > baseline
    strong &= above
    weak &= above
    promotion = np.zeros(y.size, dtype=bool)
    edges = np.diff(np.concatenate([[0], weak.astype(np.int8), [0]]))
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        if _longest_run(strong[start:end]) >= _PROMOTION_RUN:
            promotion[start:end] = True
    return np.where(promotion, np.maximum(baseline, 0.0), y)


def _longest_run(flags: NDArray[np.bool_]) -> int:
    longest = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    return longest


def cap_promotion_orders(y: Sequence[float] | Series) -> Series:
    """An intermittent series with sale sizes above median + 3 robust standard deviations capped.

    A bulk or promotion order of an occasional seller says nothing about its next weeks.
    """
    values = np.asarray(y, dtype=float)
    sizes = values[values > 0]
    if sizes.size == 0:
        return values
    median = float(np.median(sizes))
    spread = max(1.4826 * float(np.median(np.abs(sizes - median))), 1.0)
    return np.minimum(values, median + _OUTLIER_SIGMAS * spread)


# A model forecasts `h` days from a series: (mean over the horizon, in-sample one-step fit).
Model = Callable[[Series, int], tuple[Series, Series]]
# A member of a combination: its name, its model and the series it is fitted on.
Member = tuple[str, Model, Series]


def _statsforecast(factory: Callable[[], Any]) -> Model:
    def run(y: Series, h: int) -> tuple[Series, Series]:
        result = factory().forecast(y, h, fitted=True)
        fitted = result.get("fitted")
        return (
            np.asarray(result["mean"], dtype=float),
            np.full(y.size, np.nan) if fitted is None else np.asarray(fitted, dtype=float),
        )

    return run


def _croston_sba() -> Any:
    from statsforecast.models import CrostonSBA

    return CrostonSBA()


def _window_mean(window: int) -> Model:
    """The mean of the last `window` days; fitted by the trailing mean before each day."""

    def run(y: Series, h: int) -> tuple[Series, Series]:
        sums = np.concatenate([[0.0], np.cumsum(y)])
        day = np.arange(y.size)
        first = np.maximum(0, day - window)
        with np.errstate(invalid="ignore", divide="ignore"):
            fitted = (sums[day] - sums[first]) / (day - first)
        fitted[0] = np.nan
        return np.full(h, float(np.mean(y[-window:]))), fitted

    return run


def _regular_members(sold: Series, cleaned: Series) -> list[Member]:
    from statsforecast.models import AutoETS, DynamicOptimizedTheta

    # The full-history statsforecast members fit the series as sold (but for unmistakable
    # promotions); Holt-Winters and the recent Theta fit the fully cleaned one. The median of five
    # ignores the two most extreme, so one or two members extrapolating a trend too far or
    # misreading a level shift cannot move the forecast.
    return [
        ("auto-ets", _statsforecast(lambda: AutoETS(season_length=SEASON)), sold),
        (
            "damped-ets",
            _statsforecast(lambda: AutoETS(season_length=SEASON, damped=True)),
            sold,
        ),
        (
            "dynamic-theta",
            _statsforecast(lambda: DynamicOptimizedTheta(season_length=SEASON)),
            sold,
        ),
        ("holt-winters", _holt_winters_damped, cleaned),
        (
            "dynamic-theta-recent",
            _statsforecast(lambda: DynamicOptimizedTheta(season_length=SEASON)),
            cleaned[-RECENT_FIT_DAYS:],
        ),
    ]


def _intermittent_members(capped: Series) -> list[Member]:
    from statsforecast.models import AutoCES, AutoETS

    # Measured against Croston-SBA, TSB, IMAPA and ADIDA: AutoCES was the only model that
    # beat AutoETS on lumpy slow movers, and their mean beat both.
    return [
        ("auto-ets", _statsforecast(lambda: AutoETS(season_length=SEASON)), capped),
        ("auto-ces", _statsforecast(lambda: AutoCES(season_length=SEASON)), capped),
    ]


def _try(model: Model, y: Series, h: int) -> tuple[Series, Series] | None:
    """The model's forecast, or None when it cannot fit this series."""
    try:
        with warnings.catch_warnings():
            # Optimiser and degenerate-variance warnings on short or flat series: the
            # combination absorbs a poor member, the log would only fill up.
            warnings.simplefilter("ignore")
            mean, fitted = model(y, h)
    # A model that fails on a series (too short for its season, degenerate optimiser start)
    # is simply left out of the combination; the others and the fallback remain.
    except Exception:
        return None
    if mean.shape != (h,) or not np.all(np.isfinite(mean)):
        return None
    return np.maximum(mean, 0.0), fitted


def _combine(
    members: list[Member],
    target: Series,
    horizon: int,
    combine: Callable[..., Any],
) -> Forecast:
    """Combine the members' forecasts day by day; each member's in-sample fit is aligned to
    the end of `target` (members fitted on fewer days have no fit for the earlier ones)."""
    names: list[str] = []
    means: list[Series] = []
    fits: list[Series] = []
    for name, model, series in members:
        fit = _try(model, series, horizon)
        if fit is None:
            continue
        names.append(name)
        means.append(fit[0])
        aligned = np.full(target.size, np.nan)
        fitted = np.asarray(fit[1], dtype=float)[-target.size :]
        aligned[target.size - fitted.size :] = fitted
        fits.append(aligned)
    if not names:
        return _single("window-mean", _window_mean(MEAN_WINDOW), target, horizon)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.asarray(combine(np.vstack(means), axis=0), dtype=float)
        fitted = np.asarray(np.nanmedian(np.vstack(fits), axis=0), dtype=float)
    return Forecast(
        mean=_non_negative(mean),
        sigma=_one_step_sigma(target, fitted),
        method="+".join(names),
        parameters={"members": float(len(names))},
    )


def _single(method: str, model: Model, y: Series, horizon: int) -> Forecast:
    """A history too short to combine: the named model, else the recent mean."""
    fit = _try(model, y, horizon)
    if fit is None:
        method = "window-mean"
        fit = _window_mean(MEAN_WINDOW)(y, horizon)
    return Forecast(mean=_non_negative(fit[0]), sigma=_one_step_sigma(y, fit[1]), method=method)


def _holt_winters_damped(y: Series, h: int) -> tuple[Series, Series]:
    """Additive damped-trend Holt-Winters, least one-step squared error over a small grid.

    Every grid point runs in one vectorised pass, so a year of history takes milliseconds.
    """
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
    predictions = np.empty((y.size, count))
    for t, observed in enumerate(y):
        phase = t % SEASON
        predicted = level + phi * trend + seasonal[:, phase]
        predictions[t] = predicted
        error = observed - predicted
        if t >= SEASON:
            squared += error * error
        level = level + phi * trend + alpha * error
        trend = phi * trend + alpha * beta * error
        seasonal[:, phase] += gamma * error

    best = int(np.argmin(squared))
    steps = np.arange(1, h + 1)
    damping = np.cumsum(phi[best] ** steps)
    phases = (y.size + steps - 1) % SEASON
    mean = level[best] + damping * trend[best] + seasonal[best, phases]
    fitted = predictions[:, best].copy()
    # The first week only starts the season off: no forecast of it to speak of.
    fitted[:SEASON] = np.nan
    return mean, fitted


def _initial_states(y: Series) -> tuple[float, float, Series]:
    """Level, trend and weekday offsets from a regression on the first weeks.

    y_t = trend * t + c_weekday fitted by least squares; the level is the mean weekday constant,
    placed one day before the first observation, and the season the offsets from it.
    """
    window = y[: min(y.size, _HW_INIT_WEEKS * SEASON)]
    t = np.arange(window.size, dtype=float)
    design = np.zeros((window.size, SEASON + 1))
    design[:, 0] = t
    design[np.arange(window.size), 1 + (np.arange(window.size) % SEASON)] = 1.0
    coefficients, *_ = np.linalg.lstsq(design, window, rcond=None)
    trend = float(coefficients[0])
    constants = coefficients[1:]
    level = float(constants.mean())
    return level - trend, trend, np.asarray(constants - level, dtype=np.float64)


def _one_step_sigma(y: Series, fitted: Series) -> float:
    """Root mean squared in-sample one-step error; without one, the spread of recent days
    (at least the Poisson spread of their mean, so a few equal days do not claim certainty)."""
    errors = y - fitted
    errors = errors[np.isfinite(errors)]
    if errors.size >= 2:
        return float(math.sqrt(float(np.mean(errors * errors))))
    recent = y[-MEAN_WINDOW:]
    return max(float(np.std(recent)), math.sqrt(float(np.mean(recent))))


def _non_negative(values: Series) -> list[float]:
    return [max(0.0, float(value)) for value in values]
