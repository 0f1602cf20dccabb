"""Reorder point, order-up-to level and order quantity of one SKU from its demand forecast.

A periodic-review (s, S) policy: every review the projected stock position (on hand - reserved
+ on order) is compared with the reorder point s = demand over the lead time + safety stock;
at or below it, enough is ordered to bring the position up to S = demand over lead time and
review period + safety stock. Safety stock = z(service level) x sigma x sqrt(lead time), with
sigma the one-day forecast error and z the standard normal quantile of the cycle service level.
Stock quantities are whole units, rounded up so the service level is never undershot.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from pydantic import BaseModel, ConfigDict, Field

from policies.forecasting import Forecast

# Rounding noise (e.g. 12.000000000001) must not cost a whole extra unit when ceiling.
_UNIT_TOLERANCE = 1e-9


class ReplenishmentPlan(BaseModel):
    """What to order for one SKU now, and the levels that decided it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lead_time_demand: float = Field(ge=0.0)
    protection_demand: float = Field(ge=0.0, description="demand over lead time + review period")
    safety_stock: int = Field(ge=0)
    reorder_point: int = Field(ge=0)
    order_up_to: int = Field(ge=0)
    inventory_position: int
    order_quantity: int = Field(ge=0)
    service_level: float
    z: float

    @property
    def should_order(self) -> bool:
        return self.order_quantity > 0


def required_horizon(lead_time_days: float, review_period_days: float) -> int:
    """Days of forecast a plan with this lead time and review period needs."""
    return max(1, math.ceil(lead_time_days + review_period_days - _UNIT_TOLERANCE))


def replenishment_plan(
    forecast: Forecast,
    *,
    on_hand: int,
    reserved: int,
    on_order: int,
    lead_time_days: float,
    review_period_days: float,
    service_level: float,
) -> ReplenishmentPlan:
    """The (s, S) decision for one SKU; see the module docstring for the rule.

    The forecast must cover `required_horizon(lead_time_days, review_period_days)` days.
    Raises ValueError for negative stock figures or times, a service level outside [0.5, 1),
    or a forecast too short.
    """
    if min(on_hand, reserved, on_order) < 0:
        raise ValueError("on hand, reserved and on order cannot be negative")
    if lead_time_days < 0 or review_period_days < 0:
        raise ValueError("lead time and review period cannot be negative")
    if not 0.5 <= service_level < 1.0:
        raise ValueError("service level must be at least 0.5 and below 1")
    needed = required_horizon(lead_time_days, review_period_days)
    if len(forecast.mean) < needed:
        raise ValueError(
            f"the forecast covers {len(forecast.mean)} days; lead time and review period need "
            f"{needed}"
        )

    z = NormalDist().inv_cdf(service_level)
    safety = z * forecast.sigma * math.sqrt(lead_time_days)
    lead_time_demand = _demand_over(forecast.mean, lead_time_days)
    protection_demand = _demand_over(forecast.mean, lead_time_days + review_period_days)
    reorder_point = _units(lead_time_demand + safety)
    order_up_to = _units(protection_demand + safety)
    position = on_hand - reserved + on_order
    quantity = max(0, order_up_to - position) if position <= reorder_point else 0
    return ReplenishmentPlan(
        lead_time_demand=lead_time_demand,
        protection_demand=protection_demand,
        safety_stock=_units(safety),
        reorder_point=reorder_point,
        order_up_to=order_up_to,
        inventory_position=position,
        order_quantity=quantity,
        service_level=service_level,
        z=z,
    )


def _demand_over(mean: list[float], days: float) -> float:
    """Expected demand over the next `days` days; a part day counts pro rata."""
    whole = math.floor(days)
    total = math.fsum(mean[:whole])
    part = days - whole
    if part > _UNIT_TOLERANCE:
        total += part * mean[whole]
    return total


def _units(quantity: float) -> int:
    return max(0, math.ceil(quantity - _UNIT_TOLERANCE))
