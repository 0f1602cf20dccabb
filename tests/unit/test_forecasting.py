"""Demand forecast: seasons and trends are followed, promotions and zeros are handled, MASE."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.datagen.sales import generate_sales
from policies.forecasting import (
    MAX_FIT_DAYS,
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

    assert np.max(np.abs(np.array(forecast.mean) - truth)) < 1e-3
    assert forecast.sigma < 0.5


def test_regular_demand_combines_all_five_members() -> None:
    rng = np.random.default_rng(8)
    series = seasonal_series(12 * 7, level=20.0) * 2.0 + rng.normal(0.0, 0.3, 12 * 7)

    forecast = forecast_demand(series.tolist(), 7)

    assert forecast.method == (
        "auto-ets+damped-ets+dynamic-theta+holt-winters+dynamic-theta-recent"
    )
    assert forecast.parameters["members"] == 5
    assert not forecast.intermittent
    truth = seasonal_series(12 * 7 + 7, level=20.0)[-7:] * 2.0
    # The weekly shape (weekdays 18 apart) is forecast within the noise.
    assert np.max(np.abs(np.array(forecast.mean) - truth)) < 1.0


def test_flat_noise_is_forecast_at_its_mean_without_an_invented_season() -> None:
    rng = np.random.default_rng(9)
    series = rng.poisson(30.0, 12 * 7).astype(float)

    forecast = np.array(forecast_demand(series.tolist(), 7).mean)

    assert abs(np.mean(forecast) - 30.0) < 3.0
    # Repeating last week's noise would swing by about the noise itself (ten units and more).
    assert np.ptp(forecast) < 5.0


def test_level_shift_a_few_weeks_back_is_followed() -> None:
    rng = np.random.default_rng(6)
    days = 20 * 7
    series = seasonal_series(days, level=40.0) + rng.normal(0.0, 1.5, days)
    series[-5 * 7 :] += 20.0

    forecast = np.array(forecast_demand(series.tolist(), 14).mean)

    # Five weeks at the new level: the forecast is at it, not between old and new.
    assert abs(forecast.mean() - 60.0) < 3.0


def test_a_member_gone_astray_does_not_move_the_median() -> None:
    rng = np.random.default_rng(12)
    days = 16 * 7
    series = seasonal_series(days, level=40.0) + rng.normal(0.0, 1.0, days)

    forecast = np.array(forecast_demand(series.tolist(), 14).mean)

    truth = seasonal_series(days + 14, level=40.0)[-14:]
    # Whatever one model makes of the noise, the median of five stays on the season.
    assert np.mean(np.abs(forecast - truth)) < 1.0


def test_noisy_weekly_season_keeps_its_shape() -> None:
    rng = np.random.default_rng(3)
    series = seasonal_series(12 * 7, level=40.0) + rng.normal(0.0, 1.0, 12 * 7)
    truth = seasonal_series(12 * 7 + 14, level=40.0)[-14:]

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


def test_promotion_two_weeks_back_does_not_lift_the_forecast() -> None:
    rng = np.random.default_rng(13)
    regular = seasonal_series(16 * 7, level=40.0) + rng.normal(0.0, 1.5, 16 * 7)
    promoted = regular.copy()
    promoted[-16:-12] *= 2.5

    plain = np.array(forecast_demand(regular.tolist(), 14).mean)
    with_promotion = np.array(forecast_demand(promoted.tolist(), 14).mean)

    assert abs(with_promotion.mean() - plain.mean()) < 0.05 * plain.mean()


def test_a_single_high_day_is_left_to_the_models() -> None:
    # One odd day is ordinary noise for a skewed seller, not a promotion: the models fitted on
    # the sales as sold see it, so the forecast rises a little, but far less than the day.
    rng = np.random.default_rng(14)
    regular = seasonal_series(16 * 7, level=40.0) + rng.normal(0.0, 1.5, 16 * 7)
    spiked = regular.copy()
    spiked[-1] += 80.0

    plain = np.array(forecast_demand(regular.tolist(), 14).mean)
    with_spike = np.array(forecast_demand(spiked.tolist(), 14).mean)

    assert 0.0 < with_spike.mean() - plain.mean() < 0.25 * 80.0


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


def test_intermittent_series_uses_an_intermittent_method_with_a_sensible_rate() -> None:
    rng = np.random.default_rng(2)
    days = 200
    sales = np.where(rng.random(days) < 0.15, rng.integers(1, 4, days), 0).astype(float)

    forecast = forecast_demand(sales.tolist(), 10)

    assert forecast.intermittent, forecast.method
    assert forecast.method == "auto-ets+auto-ces"
    # About the average rate over the horizon; AutoCES may read a weekly pattern into the
    # noise, which scored better than flat rates on lumpy sellers, so single days can swing.
    assert 0.7 * sales.mean() < np.mean(forecast.mean) < 1.3 * sales.mean()
    assert all(0.0 <= rate < 4.0 * sales.mean() for rate in forecast.mean)
    assert forecast.sigma > 0.0


def test_intermittent_promotion_order_does_not_inflate_the_rate() -> None:
    sales = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0] * 20
    with_bulk = [*sales[:-1], 60.0]

    plain = sum(forecast_demand(sales, 7).mean)
    bulk = sum(forecast_demand(with_bulk, 7).mean)

    assert bulk < plain * 1.5


def test_no_history_and_no_demand_forecast_zero() -> None:
    empty = forecast_demand([], 5)
    silent = forecast_demand([0.0] * 40, 5)

    assert empty.mean == [0.0] * 5
    assert empty.method == "no-history"
    assert silent.mean == [0.0] * 5
    assert silent.method == "no-demand"


def test_short_history_falls_back_to_the_mean_without_error() -> None:
    forecast = forecast_demand([10, 12, 9, 11, 10, 12, 11, 10], 4)

    assert forecast.method == "window-mean"
    assert all(9.0 < value < 12.0 for value in forecast.mean)
    assert forecast.sigma > 0.0
    intermittent = forecast_demand([0, 0, 3, 0, 0, 0, 1, 0, 0, 2], 5)
    assert intermittent.method == "croston-sba"
    assert len(intermittent.mean) == 5 and intermittent.mean[0] > 0.0
    single = forecast_demand([4.0], 3)
    assert single.mean == [4.0] * 3 and single.sigma > 0.0


def test_two_weeks_of_history_are_combined_and_three_follow_the_season() -> None:
    two_weeks = forecast_demand(seasonal_series(14, level=20.0).tolist(), 7)
    three_weeks = forecast_demand(seasonal_series(21, level=20.0).tolist(), 7)

    assert two_weeks.method != "window-mean"
    assert two_weeks.parameters["members"] >= 3
    # Two weeks are too few to tell a season from noise: about the level.
    assert abs(np.mean(two_weeks.mean) - 20.0) < 2.0
    truth = seasonal_series(21 + 7, level=20.0)[-7:]
    assert np.max(np.abs(np.array(three_weeks.mean) - truth)) < 0.5


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


def test_backtest_scores_the_method_beside_seasonal_naive_and_auto_ets() -> None:
    histories = generate_sales(days=180, skus=4, seed=7)

    results = [backtest(history.quantities, 14) for history in histories]

    method = np.mean([result.mase for result in results])
    naive = np.mean([result.mase_seasonal_naive for result in results])
    assert method < naive
    assert all(math.isfinite(result.mase_auto_ets) for result in results)
    # SKU-0004 is the generator's intermittent seller.
    assert results[3].intermittent
    assert not any(result.intermittent for result in results[:3])


def test_backtest_refuses_a_hold_out_longer_than_the_data_allows() -> None:
    with pytest.raises(ValueError, match="needs at least"):
        backtest([1.0] * 20, 14)


@settings(max_examples=20, deadline=None)
@given(
    history=st.lists(st.integers(min_value=0, max_value=500), max_size=60),
    horizon=st.integers(min_value=1, max_value=30),
)
def test_forecast_is_non_negative_and_covers_the_horizon(history: list[int], horizon: int) -> None:
    forecast = forecast_demand(history, horizon)

    assert len(forecast.mean) == horizon
    assert all(math.isfinite(value) and value >= 0.0 for value in forecast.mean)
    assert math.isfinite(forecast.sigma) and forecast.sigma >= 0.0
    if not any(history):
        assert forecast.mean == [0.0] * horizon


def test_the_replenishment_workflow_does_not_load_statsforecast() -> None:
    # The workflow sandbox re-imports what workflows import; the models belong in activities.
    code = (
        "import sys, workflows.replenishment, policies.forecasting; "
        "assert 'statsforecast' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_forecast_compiles_nothing_at_run_time() -> None:
    # statsforecast's models are compiled ahead of time: a scheduled run has no JIT warm-up
    # (numba, which older statsforecast compiled on first use, must not come back unnoticed).
    code = (
        "import sys; from policies.forecasting import forecast_demand; "
        "forecast_demand([3.0, 5.0, 4.0, 6.0, 9.0, 12.0, 7.0] * 10, 8); "
        "assert 'numba' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_the_last_year_is_fitted() -> None:
    assert MAX_FIT_DAYS is not None
    rng = np.random.default_rng(4)
    recent = seasonal_series(MAX_FIT_DAYS, level=30.0) + rng.normal(0.0, 1.0, MAX_FIT_DAYS)
    history = np.concatenate([np.full(200, 500.0), recent])

    # The old, much higher level lies beyond the fitting window and does not lift the forecast.
    assert forecast_demand(history.tolist(), 8) == forecast_demand(recent.tolist(), 8)
