"""The marketplaces' side of an order: read a marketplace's feed, take each order once
(mapped onto the shop's order, or kept as a channel exception with its raw payload),
acknowledge what was placed, and tell the marketplace when its order ships or is cancelled
by the shop. Calls to a marketplace are regular activities: one that is down is retried by
Temporal with backoff, and every POST carries an idempotency key, so nothing is taken or
told twice. Taking an order touches only PostgreSQL and runs as a local activity.

A push the marketplace refuses for good (it cancelled the order on its side meanwhile, say)
is no reason to stop the order, whose parcel is with the carrier: the refusal goes on the
order's timeline and to customer service, and the order goes on.
"""

from __future__ import annotations

import asyncpg
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.effects import Effects, OrderEvent
from activities.marketplace_client import (
    MARKETPLACE_REFUSED,
    MarketplaceClient,
    MarketplaceUnavailable,
)
from db.repositories import catalogue
from db.repositories import marketplace as feeds
from orderflow.models import Step
from orderflow.models.activity_names import ActivityName
from orderflow.models.marketplace import (
    FeedOrderRef,
    FeedPage,
    FeedRequest,
    MappedOrder,
    MarketplaceAck,
    MarketplaceCancellation,
    MarketplaceCancellationPush,
    MarketplaceShipment,
    MarketplaceShipmentPush,
)
from orderflow.settings import Settings
from policies.marketplace_mapping import map_feed_order

# Who a cancellation that came from the marketplace's feed is requested by.
MARKETPLACE_ACTOR = "marketplace"
# Who hears of a push the marketplace refused.
CUSTOMER_SERVICE = "customer_service"


class MarketplaceActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, http: httpx.AsyncClient) -> None:
        self._pool = pool
        self._client = MarketplaceClient(settings, http)
        self._effects = Effects(pool, settings)

    @activity.defn(name=ActivityName.FETCH_MARKETPLACE_ORDERS)
    async def fetch_marketplace_orders(self, data: FeedRequest) -> FeedPage:
        """The feed after the cursor; where it stands (or why it cannot be read) is kept
        for `orderflow channels status`."""
        try:
            page = await self._client.orders_after(data.code, data.cursor, data.limit)
        except (MarketplaceUnavailable, ApplicationError) as exc:
            await feeds.record_poll(
                self._pool, data.code, cursor=None, orders_seen=0, error=str(exc)[:500]
            )
            # Even a refusal (a wrong key) is asked again: the feed must not stop for good
            # over what an operator can fix; the error shows in `orderflow channels status`.
            raise ApplicationError(str(exc), type="MarketplaceUnavailable") from exc
        await feeds.record_poll(
            self._pool, data.code, cursor=page.next_cursor, orders_seen=len(page.orders), error=None
        )
        return page

    @activity.defn(name=ActivityName.TAKE_MARKETPLACE_ORDER)
    async def take_marketplace_order(self, data: FeedOrderRef) -> MappedOrder:
        """A feed entry, taken once: what was decided the first time stands (a person may
        have fixed or rejected it since)."""
        code = data.code
        async with self._pool.acquire() as conn:
            sold = await self._sold(conn, data.raw)
            mapped = map_feed_order(code, data.raw, sold)
            if mapped.status == "cancelled":
                return await self._cancelled(conn, code, mapped)
            row = await feeds.take_feed_order(
                conn,
                marketplace=code,
                external_order_id=mapped.external_order_id,
                raw=data.raw,
                order_id=mapped.order.order_id if mapped.order else None,
                problem=mapped.problem,
            )
            if row["status"] == "rejected":
                return MappedOrder(external_order_id=mapped.external_order_id, rejected=True)
            if row["status"] == "exception":
                return MappedOrder(
                    external_order_id=mapped.external_order_id, problem=row["problem"]
                )
            # Placed from the row: a person may have corrected the payload.
            stored = row["raw"]
            placed = map_feed_order(code, stored, await self._sold(conn, stored))
            return placed.model_copy(update={"placed_order_id": row["order_id"]})

    async def _sold(self, conn: asyncpg.Connection, raw: dict[str, object]) -> set[str]:
        lines = raw.get("lines")
        skus = [
            str(line.get("sku"))
            for line in (lines if isinstance(lines, list) else [])
            if isinstance(line, dict)
        ]
        return set(await catalogue.products_by_sku(conn, skus))

    async def _cancelled(
        self, conn: asyncpg.Connection, code: str, mapped: MappedOrder
    ) -> MappedOrder:
        row = await feeds.feed_order(conn, code, mapped.external_order_id)
        if row is None:
            return mapped
        if row["status"] == "exception":
            # Cancelled before anybody placed it: it leaves customer service's queue.
            await feeds.reject(
                conn,
                code,
                mapped.external_order_id,
                by=MARKETPLACE_ACTOR,
                note="cancelled on the marketplace",
            )
            return mapped.model_copy(update={"rejected": True})
        return mapped.model_copy(update={"placed_order_id": row["order_id"]})

    @activity.defn(name=ActivityName.ACKNOWLEDGE_MARKETPLACE_ORDER)
    async def acknowledge_marketplace_order(self, data: MarketplaceAck) -> None:
        await self._client.acknowledge(data.code, data.external_order_id)
        await feeds.acknowledged(self._pool, data.code, data.external_order_id)

    @activity.defn(name=ActivityName.PUSH_MARKETPLACE_SHIPMENT)
    async def push_marketplace_shipment(self, data: MarketplaceShipmentPush) -> None:
        key = f"shipment-{data.order_id}-{data.reship_no}"
        try:
            await self._client.push_shipment(
                data.code,
                data.external_order_id,
                MarketplaceShipment(
                    carrier=data.carrier,
                    tracking_number=data.tracking_number,
                    shipped_at=data.shipped_at,
                ),
                key=key,
            )
        except ApplicationError as refused:
            await self._refused(data.order_id, data.code, "shipment", key, refused)

    @activity.defn(name=ActivityName.PUSH_MARKETPLACE_CANCELLATION)
    async def push_marketplace_cancellation(self, data: MarketplaceCancellationPush) -> None:
        key = f"cancellation-{data.order_id}"
        try:
            await self._client.push_cancellation(
                data.code,
                data.external_order_id,
                MarketplaceCancellation(reason=data.reason),
                key=key,
            )
        except ApplicationError as refused:
            await self._refused(data.order_id, data.code, "cancellation", key, refused)

    async def _refused(
        self, order_id: str, code: str, what: str, key: str, refused: ApplicationError
    ) -> None:
        """A push the marketplace refuses for good: on the order's timeline and in customer
        service's inbox, once; anything else (a marketplace not configured) fails as before."""
        if refused.type != MARKETPLACE_REFUSED or not refused.message.startswith(f"{code} refused"):
            raise refused
        event = OrderEvent(
            order_id,
            f"marketplace.{key}.refused",
            # A cancellation ends the order at whatever step; its event sits with the last.
            Step.DELIVERY if what == "shipment" else Step.COMPLETION,
            f"marketplace_{what}_refused",
            actor=code,
            details={"marketplace": code, "answer": refused.message[:300]},
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return
            await claimed.notify_department(
                department=CUSTOMER_SERVICE,
                key=f"{order_id}:marketplace_refused:{key}",
                kind="marketplace_push_refused",
                context={"marketplace": code, "what": what, "answer": refused.message[:300]},
            )
