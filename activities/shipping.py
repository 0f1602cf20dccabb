"""Steps 6 and 7 towards the carrier: book the shipment and ask after a late parcel.

These call the carrier's HTTP API (httpx), so they run as regular activities with their own
retries. A booking carries the order id as its idempotency key: a retried booking books once.
"""

from __future__ import annotations

import asyncpg
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.names import ActivityName
from db.repositories import catalogue, events, inventory, notifications
from orderflow.models import OrderStatus, ShipmentBooking, Step
from orderflow.models.carrier import (
    Carrier,
    CarrierBookingRequest,
    CarrierBookingResponse,
    CarrierShipmentStatus,
    Destination,
)
from orderflow.models.steps import BookShipmentInput, FollowUpInput, FollowUpResult
from orderflow.settings import Settings
from policies.carrier_choice import NoCarrierAvailable, choose_carrier


class ShippingActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, http: httpx.AsyncClient) -> None:
        self._pool = pool
        self._settings = settings
        self._http = http

    @activity.defn(name=ActivityName.BOOK_SHIPMENT)
    async def book_shipment(self, data: BookShipmentInput) -> ShipmentBooking:
        order = data.order
        stored = await self._pool.fetchrow(
            """SELECT carrier, tracking_number, delivery_note, expected_delivery, choice_reason, cost
               FROM shipments WHERE order_id = $1""",
            order.order_id,
        )
        if stored is not None:
            return ShipmentBooking(**dict(stored))

        carriers = [Carrier(**dict(r)) for r in await catalogue.carriers(self._pool)]
        try:
            choice = choose_carrier(
                carriers,
                country=order.shipping_address.country,
                weight_kg=data.weight_kg,
                service_level=order.service_level,
                shipped_at=data.requested_at,
            )
        except NoCarrierAvailable as exc:
            raise ApplicationError(str(exc), type="NoCarrierAvailable", non_retryable=True) from exc

        request = CarrierBookingRequest(
            order_id=order.order_id,
            service_level=order.service_level,
            weight_kg=data.weight_kg,
            destination=Destination(
                country=order.shipping_address.country,
                postal_code=order.shipping_address.postal_code,
            ),
            webhook_url=f"{self._settings.carrier_webhook_base_url}/carriers/{choice.carrier}/events",
        )
        response = await self._http.post(
            f"{self._settings.carrier_api_url}/carriers/{choice.carrier}/shipments",
            json=request.model_dump(mode="json", exclude_none=True),
            headers={"Idempotency-Key": f"order-{order.order_id}"},
            timeout=self._settings.carrier_http_timeout_seconds,
        )
        if 400 <= response.status_code < 500 and response.status_code not in (408, 409, 429):
            raise ApplicationError(
                f"carrier {choice.carrier} refused the booking: {response.status_code} {response.text}",
                type="CarrierRefused",
                non_retryable=True,
            )
        response.raise_for_status()
        booked = CarrierBookingResponse.model_validate(response.json())
        booking = ShipmentBooking(
            carrier=choice.carrier,
            tracking_number=booked.tracking_number,
            delivery_note=booked.delivery_note,
            expected_delivery=booked.expected_delivery,
            choice_reason=choice.reason,
            cost=booked.cost,
        )

        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await events.record_event(
                conn,
                order_id=order.order_id,
                event_key="delivery.shipped",
                step=Step.DELIVERY,
                kind="shipped",
                status=OrderStatus.SHIPPED,
                details=booking.model_dump(mode="json"),
            )
            if recorded is None:
                return booking
            await conn.execute(
                """INSERT INTO shipments (order_id, carrier, tracking_number, delivery_note,
                       service_level, weight_kg, cost, choice_reason, booked_at, expected_delivery, status)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'BOOKED')""",
                order.order_id,
                booking.carrier,
                booking.tracking_number,
                booking.delivery_note,
                order.service_level,
                data.weight_kg,
                booking.cost,
                booking.choice_reason,
                recorded,
                booking.expected_delivery,
            )
            await inventory.consume(conn, order.order_id)
            await notifications.enqueue(
                conn,
                key=f"{order.order_id}:shipped",
                order_id=order.order_id,
                kind="shipping_confirmation",
                channel="email",
                recipient=str(order.customer.email),
                subject=f"Order {order.order_id} is on its way",
                body=f"Carrier {booking.carrier}, tracking number {booking.tracking_number}, "
                f"expected by {booking.expected_delivery:%Y-%m-%d}.",
            )
        return booking

    @activity.defn(name=ActivityName.FOLLOW_UP_DELIVERY)
    async def follow_up_delivery(self, data: FollowUpInput) -> FollowUpResult:
        shipment = await self._pool.fetchrow(
            "SELECT carrier, tracking_number FROM shipments WHERE order_id = $1", data.order_id
        )
        if shipment is None:
            raise ApplicationError(f"order {data.order_id} has no shipment", non_retryable=True)
        carrier_status: str | None = None
        try:
            response = await self._http.get(
                f"{self._settings.carrier_api_url}/carriers/{shipment['carrier']}"
                f"/shipments/{shipment['tracking_number']}",
                timeout=self._settings.carrier_http_timeout_seconds,
            )
            if response.status_code == 200:
                carrier_status = CarrierShipmentStatus.model_validate(response.json()).status
        except httpx.HTTPError as exc:
            # A carrier that does not answer is itself worth the follow-up: record and go on.
            activity.logger.warning("carrier status query failed: %s", exc)

        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await events.record_event(
                conn,
                order_id=data.order_id,
                event_key=f"tracking.follow_up.{data.attempt}",
                step=Step.TRACKING,
                kind="delivery_follow_up",
                details={
                    "attempt": data.attempt,
                    "escalated": data.escalate,
                    "carrier_status": carrier_status,
                },
            )
            if recorded is None:
                return FollowUpResult(carrier_status=carrier_status)
            await conn.execute(
                """INSERT INTO follow_ups (order_id, attempt, opened_at, escalated, carrier_status)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id, attempt) DO NOTHING""",
                data.order_id,
                data.attempt,
                recorded,
                data.escalate,
                carrier_status,
            )
            email = await conn.fetchval(
                "SELECT customer_email FROM orders WHERE order_id = $1", data.order_id
            )
            await notifications.enqueue(
                conn,
                key=f"{data.order_id}:late:{data.attempt}",
                order_id=data.order_id,
                kind="delivery_delayed",
                channel="email",
                recipient=email,
                subject=f"Order {data.order_id} is running late",
                body="Your parcel has not arrived when expected. We are on it with the carrier.",
            )
            department = "logistics_supervisor" if data.escalate else "logistics"
            await notifications.enqueue(
                conn,
                key=f"{data.order_id}:follow_up:{data.attempt}",
                order_id=data.order_id,
                kind="delivery_follow_up",
                channel="department",
                recipient=await notifications.department_lead(conn, department),
                subject=f"Follow up order {data.order_id} (attempt {data.attempt})",
                body=f"Carrier {shipment['carrier']} reports {carrier_status or 'nothing'}.",
            )
        return FollowUpResult(carrier_status=carrier_status)
