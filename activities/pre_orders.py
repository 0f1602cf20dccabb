"""Pre-orders (step 4): an order with a pre-sale product waits for its release without
reserving, the customer told when it will ship; purchasing may move the date (the customer
told again); on the release the order goes on to reserve. Each effect once, with its event
(`activities/effects.py`); PostgreSQL only, so local activities.
"""

from __future__ import annotations

from temporalio import activity

from activities.effects import OrderActivities, OrderEvent
from db.repositories import pre_orders
from orderflow.models import Order, Step
from orderflow.models.activity_names import ActivityName
from orderflow.models.steps import OrderRef, ReleaseHold, ReleaseMoveInput


class PreOrderActivities(OrderActivities):
    @activity.defn(name=ActivityName.HOLD_FOR_RELEASE)
    async def hold_for_release(self, order: Order) -> ReleaseHold:
        """When the order's pre-sale products are released; a date still ahead holds the
        order (its row, its event, the customer's notice), once."""
        async with self._pool.acquire() as conn, conn.transaction():
            skus, release_at = await pre_orders.release_of(conn, [i.sku for i in order.items])
            if release_at is None:
                return ReleaseHold()
            row = await pre_orders.hold(conn, order.order_id, skus, release_at)
            claimed = await self._effects.claim_in(
                conn,
                OrderEvent(
                    order.order_id,
                    "pre_order.waiting",
                    Step.INVENTORY,
                    "pre_order_waiting",
                    details={"skus": skus, "release_at": row["release_at"].isoformat()},
                ),
            )
            if claimed is not None and row["release_at"] > claimed.at:
                await claimed.email_customer(
                    key=f"{order.order_id}:pre_order_waiting",
                    kind="pre_order_waiting",
                    context={"release_at": row["release_at"], "pre_sale_skus": skus},
                )
            return ReleaseHold(release_at=row["release_at"])

    @activity.defn(name=ActivityName.MOVE_RELEASE)
    async def move_release(self, data: ReleaseMoveInput) -> ReleaseHold:
        """Purchasing moved a release: the order's date as the catalogue has it now, and
        the customer told of it (once per move)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT skus FROM pre_orders WHERE order_id = $1", data.order_id
            )
            skus = list(row["skus"]) if row else []
            _, release_at = await pre_orders.release_of(conn, skus)
            claimed = await self._effects.claim_in(
                conn,
                OrderEvent(
                    data.order_id,
                    f"pre_order.moved.{data.move_no}",
                    Step.INVENTORY,
                    "pre_order_release_moved",
                    actor=data.by,
                    details={
                        "release_at": release_at.isoformat() if release_at else None,
                        "note": data.note,
                    },
                ),
            )
            if claimed is not None and release_at is not None:
                await pre_orders.move(conn, data.order_id, release_at)
                await claimed.email_customer(
                    key=f"{data.order_id}:release_moved:{data.move_no}",
                    kind="release_date_moved",
                    context={"release_at": release_at, "pre_sale_skus": skus},
                )
            return ReleaseHold(release_at=release_at)

    @activity.defn(name=ActivityName.RELEASE_PRE_ORDER)
    async def release_pre_order(self, ref: OrderRef) -> None:
        event = OrderEvent(ref.order_id, "pre_order.released", Step.INVENTORY, "pre_order_released")
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return
            await pre_orders.released(claimed.conn, ref.order_id, claimed.at)
