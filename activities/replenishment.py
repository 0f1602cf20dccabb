"""The replenishment run's activities: list the SKUs, forecast and plan them from their sales
history, and apply the plans (levels set, purchase requests raised) exactly once per run.

Planning only reads; applying writes each SKU in its own transaction, keyed by the run, so a
retried activity changes nothing the second time. Forecast fitting (statsforecast models,
cross-validated per SKU: about a second each) is CPU work: it runs in a thread so the worker's
event loop keeps serving workflows meanwhile.
"""

from __future__ import annotations

import asyncio

import asyncpg
from temporalio import activity

from db.repositories import inventory, sales
from orderflow.models.activity_names import ActivityName
from orderflow.models.replenishment import (
    ApplyPlansInput,
    PlanBatchInput,
    RaisedRequest,
    ReplenishmentParameters,
    SkuPlan,
)
from orderflow.settings import Settings
from policies.forecasting import forecast_demand
from policies.replenishment import replenishment_plan, required_horizon


def plan_sku(
    sku: str,
    history: list[int],
    *,
    on_hand: int,
    committed: int,
    on_order: int,
    parameters: ReplenishmentParameters,
) -> SkuPlan:
    """Forecast one SKU from its daily sales (oldest first) and decide its (s, S) levels.

    The series starts at the SKU's first sale in the window, so a product launched last
    month is not mistaken for an intermittent seller. A SKU that sold nothing is skipped:
    its levels stay as purchasing set them.
    """
    first_sale = next((i for i, q in enumerate(history) if q > 0), None)
    if first_sale is None:
        return SkuPlan(sku=sku, skipped="no sales in the history window")
    series = [float(q) for q in history[first_sale:]]
    horizon = required_horizon(parameters.lead_time_days, parameters.review_period_days)
    forecast = forecast_demand(series, horizon)
    plan = replenishment_plan(
        forecast,
        on_hand=on_hand,
        # Queued demand of waiting orders is as committed as reserved stock.
        reserved=committed,
        on_order=on_order,
        lead_time_days=parameters.lead_time_days,
        review_period_days=parameters.review_period_days,
        service_level=parameters.service_level,
    )
    return SkuPlan(
        sku=sku,
        method=forecast.method,
        sales_days=sum(1 for q in series if q > 0),
        mean_daily_demand=sum(forecast.mean) / len(forecast.mean),
        sigma=forecast.sigma,
        safety_stock=plan.safety_stock,
        reorder_point=plan.reorder_point,
        order_up_to=plan.order_up_to,
        inventory_position=plan.inventory_position,
        order_quantity=plan.order_quantity,
    )


class ReplenishmentActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    @activity.defn(name=ActivityName.LIST_REPLENISHMENT_SKUS)
    async def list_skus(self) -> list[str]:
        return await sales.replenishable_skus(self._pool)

    @activity.defn(name=ActivityName.PLAN_REPLENISHMENT)
    async def plan(self, data: PlanBatchInput) -> list[SkuPlan]:
        start, end = sales.history_window(data.as_of, data.parameters.history_days)
        history = await sales.daily_sales(self._pool, data.skus, start, end)
        stock = await sales.stock_positions(self._pool, data.skus)

        def compute() -> list[SkuPlan]:
            plans = []
            for sku in data.skus:
                row = stock.get(sku)
                if row is None:
                    plans.append(SkuPlan(sku=sku, skipped="no stock row"))
                    continue
                plans.append(
                    plan_sku(
                        sku,
                        history[sku],
                        on_hand=row["on_hand"],
                        committed=row["committed"],
                        on_order=row["on_order"],
                        parameters=data.parameters,
                    )
                )
            return plans

        return await asyncio.to_thread(compute)

    @activity.defn(name=ActivityName.APPLY_REPLENISHMENT)
    async def apply(self, data: ApplyPlansInput) -> list[RaisedRequest]:
        raised: list[RaisedRequest] = []
        for plan in data.plans:
            if plan.skipped:
                continue
            async with self._pool.acquire() as conn, conn.transaction():
                done = await sales.recorded_plan(conn, data.run_key, plan.sku)
                if done is not None:
                    # Applied by an earlier attempt of this activity: report, change nothing.
                    if done["ordered"]:
                        raised.append(
                            RaisedRequest(
                                sku=plan.sku,
                                quantity=done["ordered"],
                                request_id=done["request_id"],
                            )
                        )
                    continue
                applied = await inventory.set_levels_and_replenish(
                    conn,
                    plan.sku,
                    reorder_point=plan.reorder_point,
                    order_up_to=plan.order_up_to,
                    reason="forecast",
                )
                await sales.record_plan(
                    conn,
                    run_key=data.run_key,
                    sku=plan.sku,
                    as_of=data.as_of,
                    method=plan.method,
                    mean_daily_demand=plan.mean_daily_demand,
                    sigma=plan.sigma,
                    safety_stock=plan.safety_stock,
                    reorder_point=plan.reorder_point,
                    order_up_to=plan.order_up_to,
                    inventory_position=applied.position,
                    ordered=applied.ordered,
                    request_id=applied.request_id,
                )
                if applied.ordered and applied.request_id is not None:
                    raised.append(
                        RaisedRequest(
                            sku=plan.sku, quantity=applied.ordered, request_id=applied.request_id
                        )
                    )
        return raised
