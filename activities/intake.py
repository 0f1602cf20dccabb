"""Steps 1 and 2: the order recorded with its payment and confirmation e-mail, then
classified and assigned to its department.

Each activity writes its effect, the order's new status and its event in one transaction,
keyed so that a retried activity changes nothing the second time. They touch only
PostgreSQL, so the workflow runs them as local activities.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg
from temporalio import activity

from db.repositories import catalogue, events, notifications, orders
from orderflow.models import (
    Classification,
    Order,
    OrderStatus,
    OrderWorkflowInput,
    Step,
)
from orderflow.models.activity_names import ActivityName
from orderflow.settings import Settings
from policies.classification import ClassificationThresholds, classify, order_facts


class IntakeActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    # Step 1 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.RECORD_ORDER)
    async def record_order(self, data: OrderWorkflowInput) -> None:
        order = data.order
        placed_at = order.placed_at or data.received_at
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await orders.insert_order(
                conn,
                order,
                workflow_id=activity.info().workflow_id or f"order-{order.order_id}",
                placed_at=placed_at,
                status=OrderStatus.RECEIVED,
            )
            if not inserted:
                return
            await events.record_event(
                conn,
                order_id=order.order_id,
                event_key="generation.received",
                step=Step.GENERATION,
                kind="order_received",
                status=OrderStatus.RECEIVED,
                actor=f"storefront:{order.channel}",
                details={
                    "total": str(order.total),
                    "currency": order.currency,
                    "lines": len(order.items),
                },
            )
            # The order's rows were written above: the confirmation lists them from there.
            await notifications.email_customer(
                conn,
                self._settings,
                key=f"{order.order_id}:confirmation",
                order_id=order.order_id,
                kind="order_confirmation",
            )

    # Step 2 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.CLASSIFY_ORDER)
    async def classify_order(self, order: Order) -> Classification:
        async with self._pool.acquire() as conn, conn.transaction():
            products = await catalogue.products_by_sku(conn, [i.sku for i in order.items])
            facts = order_facts(
                order,
                pre_sale_skus={sku for sku, p in products.items() if p["pre_sale"]},
                shop_country=self._settings.shop_country,
            )
            result = classify(
                facts,
                ClassificationThresholds(
                    bulk_quantity=self._settings.bulk_quantity_threshold,
                    bulk_value=Decimal(self._settings.bulk_value_threshold),
                ),
            )
            recorded = await events.record_event(
                conn,
                order_id=order.order_id,
                event_key="classification.classified",
                step=Step.CLASSIFICATION,
                kind="order_classified",
                status=OrderStatus.CLASSIFIED,
                details=result.model_dump(),
            )
            if recorded is not None:
                await orders.set_classification(
                    conn, order.order_id, result.order_type, result.department
                )
                await notifications.notify_department(
                    conn,
                    department=result.department,
                    key=f"{order.order_id}:assigned",
                    order_id=order.order_id,
                    kind="department_assignment",
                    context={"order_type": result.order_type, "rule": result.rule},
                )
        return result
