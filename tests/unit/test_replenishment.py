"""Replenishment (s, S) policy: reorder point, order-up-to level and order quantity."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.forecasting import Forecast
from policies.replenishment import replenishment_plan, required_horizon


def flat(rate: float, sigma: float, days: int = 30) -> Forecast:
    return Forecast(mean=[rate] * days, sigma=sigma, method="test")


def test_levels_and_order_quantity_by_hand() -> None:
    # z(0.95) = 1.6449; safety = 1.6449 * 3 * sqrt(4) = 9.87 units.
    plan = replenishment_plan(
        flat(10.0, 3.0),
        on_hand=60,
        reserved=15,
        on_order=0,
        lead_time_days=4,
        review_period_days=7,
        service_level=0.95,
    )

    assert plan.z == pytest.approx(1.6449, abs=1e-4)
    assert plan.lead_time_demand == pytest.approx(40.0)
    assert plan.protection_demand == pytest.approx(110.0)
    assert plan.safety_stock == 10
    assert plan.reorder_point == 50
    assert plan.order_up_to == 120
    assert plan.inventory_position == 45
    assert plan.order_quantity == 75
    assert plan.should_order


def test_forecast_shape_is_summed_day_by_day() -> None:
    forecast = Forecast(mean=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], sigma=0.0, method="test")

    plan = replenishment_plan(
        forecast,
        on_hand=0,
        reserved=0,
        on_order=0,
        lead_time_days=2.5,
        review_period_days=3,
        service_level=0.5,
    )

    assert plan.lead_time_demand == pytest.approx(1.0 + 2.0 + 0.5 * 3.0)
    assert plan.protection_demand == pytest.approx(1.0 + 2.0 + 3.0 + 4.0 + 5.0 + 0.5 * 6.0)
    assert plan.safety_stock == 0
    assert plan.reorder_point == 5
    assert plan.order_up_to == 18
    assert plan.order_quantity == 18


def test_position_above_reorder_point_orders_nothing() -> None:
    plan = replenishment_plan(
        flat(10.0, 3.0),
        on_hand=40,
        reserved=0,
        on_order=11,
        lead_time_days=4,
        review_period_days=7,
        service_level=0.95,
    )

    assert plan.inventory_position == 51 > plan.reorder_point == 50
    assert plan.order_quantity == 0
    assert not plan.should_order


def test_position_at_reorder_point_orders_up_to_level() -> None:
    plan = replenishment_plan(
        flat(10.0, 3.0),
        on_hand=50,
        reserved=0,
        on_order=0,
        lead_time_days=4,
        review_period_days=7,
        service_level=0.95,
    )

    assert plan.order_quantity == 70


def test_stock_on_order_and_reservations_count_in_the_position() -> None:
    base: dict[str, Any] = {"lead_time_days": 4, "review_period_days": 7, "service_level": 0.95}

    plan = replenishment_plan(flat(10.0, 3.0), on_hand=30, reserved=40, on_order=20, **base)

    assert plan.inventory_position == 10
    assert plan.order_quantity == 110


def test_whole_units_are_not_inflated_by_float_noise() -> None:
    forecast = Forecast(mean=[0.1] * 30, sigma=0.0, method="test")

    plan = replenishment_plan(
        forecast,
        on_hand=100,
        reserved=0,
        on_order=0,
        lead_time_days=30,
        review_period_days=0,
        service_level=0.5,
    )

    assert plan.reorder_point == 3


def test_required_horizon_covers_lead_time_and_review() -> None:
    assert required_horizon(4, 7) == 11
    assert required_horizon(2.5, 1) == 4
    assert required_horizon(0, 0) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"on_hand": -1},
        {"reserved": -1},
        {"on_order": -1},
        {"lead_time_days": -1},
        {"review_period_days": -0.5},
        {"service_level": 0.4},
        {"service_level": 1.0},
        {"lead_time_days": 20, "review_period_days": 20},
    ],
)
def test_invalid_input_is_refused(change: dict[str, float]) -> None:
    arguments: dict[str, Any] = {
        "on_hand": 10,
        "reserved": 0,
        "on_order": 0,
        "lead_time_days": 3,
        "review_period_days": 7,
        "service_level": 0.9,
    }
    arguments.update(change)

    with pytest.raises(ValueError):
        replenishment_plan(flat(5.0, 1.0), **arguments)


rates = st.lists(st.floats(min_value=0.0, max_value=200.0), min_size=1, max_size=7)
sigmas = st.floats(min_value=0.0, max_value=50.0)
service_levels = st.floats(min_value=0.5, max_value=0.999)
lead_times = st.floats(min_value=0.0, max_value=20.0)
review_periods = st.floats(min_value=0.0, max_value=10.0)
stock = st.integers(min_value=0, max_value=10_000)


def weekly_forecast(pattern: list[float], sigma: float) -> Forecast:
    mean = [pattern[day % len(pattern)] for day in range(31)]
    return Forecast(mean=mean, sigma=sigma, method="weekly")


@settings(max_examples=200)
@given(rates, sigmas, service_levels, service_levels, lead_times, review_periods)
def test_reorder_point_rises_with_service_level(
    pattern: list[float], sigma: float, a: float, b: float, lead: float, review: float
) -> None:
    low, high = sorted((a, b))
    forecast = weekly_forecast(pattern, sigma)
    common: dict[str, Any] = {"on_hand": 0, "reserved": 0, "on_order": 0}

    lower = replenishment_plan(
        forecast, lead_time_days=lead, review_period_days=review, service_level=low, **common
    )
    higher = replenishment_plan(
        forecast, lead_time_days=lead, review_period_days=review, service_level=high, **common
    )

    assert higher.safety_stock >= lower.safety_stock
    assert higher.reorder_point >= lower.reorder_point
    assert higher.order_up_to >= lower.order_up_to


@settings(max_examples=200)
@given(rates, sigmas, service_levels, lead_times, lead_times, review_periods)
def test_reorder_point_rises_with_lead_time(
    pattern: list[float], sigma: float, level: float, a: float, b: float, review: float
) -> None:
    short, long = sorted((a, b))
    forecast = weekly_forecast(pattern, sigma)
    common: dict[str, Any] = {"on_hand": 0, "reserved": 0, "on_order": 0, "service_level": level}

    shorter = replenishment_plan(
        forecast, lead_time_days=short, review_period_days=review, **common
    )
    longer = replenishment_plan(forecast, lead_time_days=long, review_period_days=review, **common)

    assert longer.reorder_point >= shorter.reorder_point
    assert longer.order_up_to >= shorter.order_up_to


@settings(max_examples=300)
@given(rates, sigmas, service_levels, lead_times, review_periods, stock, stock, stock)
def test_order_quantity_is_never_negative_and_fills_up_to_level(
    pattern: list[float],
    sigma: float,
    level: float,
    lead: float,
    review: float,
    on_hand: int,
    reserved: int,
    on_order: int,
) -> None:
    plan = replenishment_plan(
        weekly_forecast(pattern, sigma),
        on_hand=on_hand,
        reserved=reserved,
        on_order=on_order,
        lead_time_days=lead,
        review_period_days=review,
        service_level=level,
    )

    assert plan.order_quantity >= 0
    assert plan.reorder_point <= plan.order_up_to
    if plan.inventory_position <= plan.reorder_point:
        assert plan.inventory_position + plan.order_quantity == max(
            plan.order_up_to, plan.inventory_position
        )
    else:
        assert plan.order_quantity == 0


@settings(max_examples=200)
@given(rates, sigmas, service_levels, lead_times, review_periods, stock)
def test_no_order_when_stock_is_ample(
    pattern: list[float], sigma: float, level: float, lead: float, review: float, extra: int
) -> None:
    forecast = weekly_forecast(pattern, sigma)
    demand = sum(forecast.mean[: math.ceil(lead + review) + 1])
    ample = math.ceil(demand + 4.0 * sigma * math.sqrt(lead)) + 1 + extra

    plan = replenishment_plan(
        forecast,
        on_hand=ample,
        reserved=0,
        on_order=0,
        lead_time_days=lead,
        review_period_days=review,
        service_level=level,
    )

    assert plan.order_quantity == 0
