"""Demand forecast: seasons and trends are followed, promotions and zeros are handled, MASE."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.datagen.sales import generate_sales
from policies.forecasting import (
    backtest,
    clean_outliers,
    forecast_demand,
    mase,
    seasonal_naive,
)

WEEK = np.array([-4.0, -3.0, -1.0, 0.0, 2.0, 5.0, 1.0])


def seasonal_series(days: int, level: float = 30.0, slope: float = 0.0) -> np.ndarray:
    t = np.arange(days)
    return level + slope * t + WEEK[t % 7]


def test_pure_weekly_season_is_forecast_nearly_exactly() -> None:
    series = seasonal_series(10 * 7 + 3)
    truth = seasonal_series(10 * 7 + 3 + 21)[-21:]

    forecast = forecast_demand(series.tolist(), 21)

    assert forecast.method == "holt-winters-damped"
    assert np.max(np.abs(np.array(forecast.mean) - truth)) < 1e-6
    assert forecast.sigma < 1e-6


def test_noisy_weekly_season_keeps_its_shape() -> None:
    rng = np.random.default_rng(3)
    series = seasonal_series(20 * 7, level=40.0) + rng.normal(0.0, 1.0, 20 * 7)
    truth = seasonal_series(20 * 7 + 14, level=40.0)[-14:]

    forecast = forecast_demand(series.tolist(), 14)

    assert np.mean(np.abs(np.array(forecast.mean) - truth)) < 1.0
    # Saturday (the peak) stays above Monday in the forecast, as in the data.
    assert np.corrcoef(forecast.mean, truth)[0, 1] > 0.9
    assert 0.5 < forecast.sigma < 2.0


def test_trend_is_followed() -> None:
    rng = np.random.default_rng(5)
    days = 16 * 7
    series = seasonal_series(days, level=20.0, slope=0.5) + rng.normal(0.0, 1.0, days)
    truth = seasonal_series(days + 14, level=20.0, slope=0.5)[-14:]

    forecast = np.array(forecast_demand(series.tolist(), 14).mean)

    assert abs(forecast.mean() - truth.mean()) / truth.mean() < 0.05
    # The second forecast week sells more than the first: the trend goes on.
    assert forecast[7:].sum() - forecast[:7].sum() > 0.5 * (truth[7:].sum() - truth[:7].sum())
    # ...and clearly above the last observed week.
    assert forecast[:7].mean() > series[-7:].mean() + 2.0


def test_declining_trend_never_forecasts_negative_demand() -> None:
    series = np.maximum(0.0, 60.0 - 0.6 * np.arange(98))

    forecast = forecast_demand(series.tolist(), 60)

    assert min(forecast.mean) >= 0.0
    assert forecast.mean[0] < 5.0


def test_promotion_at_the_end_of_history_is_not_extrapolated() -> None:
    rng = np.random.default_rng(11)
    regular = seasonal_series(12 * 7, level=40.0) + rng.normal(0.0, 1.5, 12 * 7)
    promoted = regular.copy()
    promoted[-3:] *= 3.0

    plain = np.array(forecast_demand(regular.tolist(), 14).mean)
    with_promotion = np.array(forecast_demand(promoted.tolist(), 14).mean)

    assert np.max(np.abs(with_promotion - plain)) < 0.05 * plain.mean()


def test_clean_outliers_replaces_spikes_and_keeps_ordinary_days() -> None:
    series = seasonal_series(8 * 7, level=50.0)
    spiked = series.copy()
    spiked[20] = 200.0
    spiked[40] = 0.0

    cleaned = clean_outliers(spiked)

    assert abs(cleaned[20] - series[20]) < 2.0
    assert abs(cleaned[40] - series[40]) < 2.0
    untouched = np.ones(series.size, dtype=bool)
    untouched[[20, 40]] = False
    assert np.array_equal(cleaned[untouched], spiked[untouched])


def test_intermittent_series_uses_croston_with_a_sensible_rate() -> None:
    rng = np.random.default_rng(2)
    days = 300
    sales = np.where(rng.random(days) < 0.15, rng.integers(1, 4, days), 0).astype(float)

    forecast = forecast_demand(sales.tolist(), 10)

    assert forecast.method == "croston-sba"
    assert len(set(forecast.mean)) == 1
    rate = forecast.mean[0]
    assert 0.5 * sales.mean() < rate < 1.5 * sales.mean()
    assert forecast.sigma > 0.0


def test_intermittent_promotion_order_does_not_inflate_the_rate() -> None:
    sales = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0] * 20
    with_bulk = [*sales[:-1], 60.0]

    plain = forecast_demand(sales, 7).mean[0]
    bulk = forecast_demand(with_bulk, 7).mean[0]

    assert bulk < plain * 1.5


def test_no_history_and_no_demand_forecast_zero() -> None:
    empty = forecast_demand([], 5)
    silent = forecast_demand([0.0] * 40, 5)

    assert empty.mean == [0.0] * 5
    assert empty.method == "no-history"
    assert silent.mean == [0.0] * 5
    assert silent.method == "no-demand"


def test_short_history_uses_level_only() -> None:
    forecast = forecast_demand([10, 12, 9, 11, 10, 12, 11, 10], 4)

    assert forecast.method == "simple-exponential-smoothing"
    assert all(9.0 < value < 12.0 for value in forecast.mean)


@pytest.mark.parametrize(
    ("history", "horizon"),
    [([1.0, 2.0], 0), ([1.0, -2.0], 3), ([1.0, math.nan], 3), ([1.0, math.inf], 3)],
)
def test_invalid_input_is_refused(history: list[float], horizon: int) -> None:
    with pytest.raises(ValueError):
        forecast_demand(history, horizon)


def test_forecast_is_deterministic() -> None:
    series = generate_sales(days=200, skus=1, seed=4)[0].quantities

    assert forecast_demand(series, 14) == forecast_demand(series, 14)


def test_seasonal_naive_repeats_the_last_week() -> None:
    series = list(range(1, 15))

    assert seasonal_naive(series, 10) == [8, 9, 10, 11, 12, 13, 14, 8, 9, 10]
    assert seasonal_naive([3, 4], 3) == [4, 4, 4]
    with pytest.raises(ValueError):
        seasonal_naive([], 3)


def test_mase_scales_by_in_sample_seasonal_naive_error() -> None:
    training = [1, 2, 3, 4, 5, 6, 7, 3, 4, 5, 6, 7, 8, 9]  # every seasonal difference is 2

    assert mase([10, 10], [9, 12], training) == pytest.approx(1.5 / 2.0)


def test_mase_falls_back_to_one_step_scale_and_handles_constant_training() -> None:
    weekly = [1, 5, 2, 6, 3, 7, 4] * 3  # seasonal differences all zero
    one_step = np.mean(np.abs(np.diff(weekly)))

    assert mase([2.0], [3.0], weekly) == pytest.approx(1.0 / one_step)
    assert mase([4.0, 4.0], [4.0, 4.0], [4.0] * 20) == 0.0
    assert mase([4.0, 5.0], [4.0, 4.0], [4.0] * 20) == math.inf


def test_mase_of_the_method_beats_seasonal_naive_on_generated_sales() -> None:
    histories = generate_sales(days=365, skus=12, seed=7)

    results = [backtest(history.quantities, 14) for history in histories]

    method = np.mean([result.mase for result in results])
    naive = np.mean([result.mase_seasonal_naive for result in results])
    wins = sum(result.mase < result.mase_seasonal_naive for result in results)
    assert method < 0.9 * naive
    assert wins >= 9
    assert {result.method for result in results} == {"holt-winters-damped", "croston-sba"}


def test_backtest_refuses_a_hold_out_longer_than_the_data_allows() -> None:
    with pytest.raises(ValueError, match="needs at least"):
        backtest([1.0] * 20, 14)


@settings(max_examples=60, deadline=None)
@given(
    history=st.lists(st.integers(min_value=0, max_value=500), max_size=120),
    horizon=st.integers(min_value=1, max_value=30),
)
def test_forecast_is_non_negative_and_covers_the_horizon(history: list[int], horizon: int) -> None:
    forecast = forecast_demand(history, horizon)

    assert len(forecast.mean) == horizon
    assert all(math.isfinite(value) and value >= 0.0 for value in forecast.mean)
    assert math.isfinite(forecast.sigma) and forecast.sigma >= 0.0
    if not any(history):
        assert forecast.mean == [0.0] * horizon
