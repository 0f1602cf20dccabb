"""Steps 1 and 2: the order recorded with its payment and confirmation e-mail, then
classified and assigned to its department.

Each activity writes its effect once, with its event (`activities/effects.py`). They touch
only PostgreSQL, so the workflow runs them as local activities.
"""

from __future__ import annotations

from decimal import Decimal

from temporalio import activity

from activities.effects import OrderActivities, OrderEvent
from db.repositories import catalogue, orders
from orderflow.models import Classification, Order, OrderStatus, OrderWorkflowInput, Step
from orderflow.models.activity_names import ActivityName
from policies.classification import ClassificationThresholds, classify, order_facts


class IntakeActivities(OrderActivities):
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
                received_at=data.received_at,
            )
            if not inserted:
                return
            # The order's row is new, so is its first event (it can exist only with the row).
            claimed = await self._effects.claim_in(
                conn,
                OrderEvent(
                    order.order_id,
                    "generation.received",
                    Step.GENERATION,
                    "order_received",
                    status=OrderStatus.RECEIVED,
                    actor=f"storefront:{order.channel}",
                    details={
                        "total": str(order.total),
                        "currency": order.currency,
                        "lines": len(order.items),
                    },
                ),
            )
            assert claimed is not None
            # The order's rows were written above: the confirmation lists them from there.
            await claimed.email_customer(
                key=f"{order.order_id}:confirmation", kind="order_confirmation"
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
            claimed = await self._effects.claim_in(
                conn,
                OrderEvent(
                    order.order_id,
                    "classification.classified",
                    Step.CLASSIFICATION,
                    "order_classified",
                    status=OrderStatus.CLASSIFIED,
                    details=result.model_dump(),
                ),
            )
            if claimed:
                await orders.set_classification(
                    conn, order.order_id, result.order_type, result.department
                )
                await claimed.notify_department(
                    department=result.department,
                    key=f"{order.order_id}:assigned",
                    kind="department_assignment",
                    context={"order_type": result.order_type, "rule": result.rule},
                )
        return result
