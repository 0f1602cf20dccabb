"""Steps 6 and 7 towards the carrier: book the shipment, ask after a late parcel, and the
cases logistics resolves when no carrier takes a parcel or a parcel is lost.

`book_shipment` and `follow_up_delivery` call the carrier's HTTP API (httpx), so they run as
regular activities with their own retries. A booking carries its idempotency key
(`order-<id>`, `order-<id>-reship-<n>` for the n-th replacement): a retried booking books
once. The other activities touch only PostgreSQL and run as local activities.
"""

from __future__ import annotations

import asyncpg
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.effects import OrderActivities, OrderEvent
from db.repositories import cancellation, catalogue, delivery, inventory, refunds
from orderflow.models import OrderStatus, ShipmentBooking, Step, TrackingUpdate
from orderflow.models.activity_names import ActivityName
from orderflow.models.carrier import (
    Carrier,
    CarrierBookingRequest,
    CarrierBookingResponse,
    CarrierShipmentStatus,
    Destination,
)
from orderflow.models.messages import LostParcelOutcome
from orderflow.models.steps import (
    BookShipmentInput,
    FollowUpInput,
    FollowUpResult,
    LostParcelInput,
    LostParcelResolutionInput,
    ReplacementOutcome,
    ShipmentHoldInput,
)
from orderflow.settings import Settings
from policies.carrier_choice import NoCarrierAvailable, choose_carrier


def _follow_up_key(booking_no: int, attempt: int) -> str:
    # The first parcel keeps the key it always had; a replacement's attempts are its own.
    return (
        f"tracking.follow_up.{attempt}"
        if booking_no == 0
        else f"tracking.follow_up.{booking_no}.{attempt}"
    )


def booking_key(order_id: str, reship_no: int) -> str:
    """The carrier's idempotency key of an order's n-th booking (0: the first parcel)."""
    return f"order-{order_id}" if reship_no == 0 else f"order-{order_id}-reship-{reship_no}"


class ShippingActivities(OrderActivities):
    def __init__(self, pool: asyncpg.Pool, settings: Settings, http: httpx.AsyncClient) -> None:
        super().__init__(pool, settings)
        self._http = http

    @activity.defn(name=ActivityName.BOOK_SHIPMENT)
    async def book_shipment(self, data: BookShipmentInput) -> ShipmentBooking:
        order = data.order
        stored = await delivery.shipment_of(self._pool, order.order_id)
        if stored is not None and stored["booking_no"] == data.reship_no:
            return ShipmentBooking(**{k: v for k, v in dict(stored).items() if k != "booking_no"})

        # The choice is recorded before the carrier is called: a retry of this attempt (the
        # rates or the carriers changed meanwhile) books with the carrier chosen first, under
        # the same idempotency key, and never a second parcel with another carrier.
        chosen = await delivery.carrier_choice(
            self._pool, order.order_id, data.reship_no, data.requested_at
        )
        if chosen is None:
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
                raise ApplicationError(
                    str(exc), type="NoCarrierAvailable", non_retryable=True
                ) from exc
            chosen = await delivery.choose_carrier_once(
                self._pool,
                order.order_id,
                data.reship_no,
                data.requested_at,
                carrier=choice.carrier,
                reason=choice.reason,
            )
        carrier, reason = chosen

        request = CarrierBookingRequest(
            order_id=order.order_id,
            service_level=order.service_level,
            weight_kg=data.weight_kg,
            destination=Destination(
                country=order.shipping_address.country,
                postal_code=order.shipping_address.postal_code,
            ),
            webhook_url=f"{self._settings.carrier_webhook_base_url}/carriers/{carrier}/events",
        )
        response = await self._http.post(
            f"{self._settings.carrier_api_url}/carriers/{carrier}/shipments",
            json=request.model_dump(mode="json", exclude_none=True),
            headers={"Idempotency-Key": booking_key(order.order_id, data.reship_no)},
            timeout=self._settings.carrier_http_timeout_seconds,
        )
        if 400 <= response.status_code < 500 and response.status_code not in (408, 409, 429):
            raise ApplicationError(
                f"carrier {carrier} refused the booking: {response.status_code} {response.text}",
                type="CarrierRefused",
                non_retryable=True,
            )
        response.raise_for_status()
        booked = CarrierBookingResponse.model_validate(response.json())
        booking = ShipmentBooking(
            carrier=carrier,
            tracking_number=booked.tracking_number,
            delivery_note=booked.delivery_note,
            expected_delivery=booked.expected_delivery,
            choice_reason=reason,
            cost=booked.cost,
        )

        if data.reship_no:
            return await self._store_replacement(data, booking)
        event = OrderEvent(
            order.order_id,
            "delivery.shipped",
            Step.DELIVERY,
            "shipped",
            status=OrderStatus.SHIPPED,
            details=booking.model_dump(mode="json"),
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return booking
            await delivery.insert_shipment(
                claimed.conn,
                order.order_id,
                booking,
                service_level=order.service_level,
                weight_kg=data.weight_kg,
                booked_at=claimed.at,
            )
            await inventory.consume(claimed.conn, order.order_id)
            # Carrier, tracking number and expected day come from the shipment row above.
            await claimed.email_customer(
                key=f"{order.order_id}:shipped", kind="shipping_confirmation"
            )
        return booking

    @activity.defn(name=ActivityName.FOLLOW_UP_DELIVERY)
    async def follow_up_delivery(self, data: FollowUpInput) -> FollowUpResult:
        shipment = await delivery.shipment_of(self._pool, data.order_id)
        if shipment is None:
            raise ApplicationError(f"order {data.order_id} has no shipment", non_retryable=True)
        carrier_status: str | None = None
        carrier_events: list[TrackingUpdate] = []
        try:
            response = await self._http.get(
                f"{self._settings.carrier_api_url}/carriers/{shipment['carrier']}"
                f"/shipments/{shipment['tracking_number']}",
                timeout=self._settings.carrier_http_timeout_seconds,
            )
            if response.status_code == 200:
                answer = CarrierShipmentStatus.model_validate(response.json())
                carrier_status = answer.status
                carrier_events = [
                    TrackingUpdate(
                        event_id=e.event_id,
                        tracking_number=answer.tracking_number,
                        status=e.status,
                        at=e.at,
                    )
                    for e in answer.events
                ]
        except httpx.HTTPError as exc:
            # A carrier that does not answer is itself worth the follow-up: record and go on.
            activity.logger.warning("carrier status query failed: %s", exc)

        event = OrderEvent(
            data.order_id,
            _follow_up_key(shipment["booking_no"], data.attempt),
            Step.TRACKING,
            "delivery_follow_up",
            details={
                "attempt": data.attempt,
                "escalated": data.escalate,
                "carrier_status": carrier_status,
            },
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return FollowUpResult(carrier_status=carrier_status, events=carrier_events)
            suffix = (
                str(data.attempt)
                if shipment["booking_no"] == 0
                else f"{shipment['booking_no']}.{data.attempt}"
            )
            await delivery.open_follow_up(
                claimed.conn,
                order_id=data.order_id,
                booking_no=shipment["booking_no"],
                attempt=data.attempt,
                opened_at=claimed.at,
                escalated=data.escalate,
                carrier_status=carrier_status,
            )
            await claimed.email_customer(
                key=f"{data.order_id}:late:{suffix}", kind="delivery_delayed"
            )
            await claimed.notify_department(
                department="logistics_supervisor" if data.escalate else "logistics",
                key=f"{data.order_id}:follow_up:{suffix}",
                kind="delivery_follow_up",
                context={
                    "attempt": data.attempt,
                    "escalated": data.escalate,
                    "carrier": shipment["carrier"],
                    "tracking_number": shipment["tracking_number"],
                    "expected_delivery": shipment["expected_delivery"],
                    "carrier_status": carrier_status,
                },
            )
        return FollowUpResult(carrier_status=carrier_status, events=carrier_events)

    async def _store_replacement(
        self, data: BookShipmentInput, booking: ShipmentBooking
    ) -> ShipmentBooking:
        order = data.order
        event = OrderEvent(
            order.order_id,
            f"delivery.reshipped.{data.reship_no}",
            Step.DELIVERY,
            "reshipped",
            status=OrderStatus.SHIPPED,
            details={**booking.model_dump(mode="json"), "reship_no": data.reship_no},
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return booking
            await delivery.replace_shipment(
                claimed.conn,
                order.order_id,
                booking_no=data.reship_no,
                carrier=booking.carrier,
                tracking_number=booking.tracking_number,
                delivery_note=booking.delivery_note,
                weight_kg=data.weight_kg,
                cost=booking.cost,
                choice_reason=booking.choice_reason,
                booked_at=claimed.at,
                expected_delivery=booking.expected_delivery,
            )
            await delivery.mark_reshipped(
                claimed.conn,
                order.order_id,
                replacement_no=data.reship_no,
                tracking_number=booking.tracking_number,
            )
            await delivery.resolve_follow_ups(claimed.conn, order.order_id, "reshipped")
            # The shipment row now describes the replacement parcel.
            await claimed.email_customer(
                key=f"{order.order_id}:shipped:{data.reship_no}", kind="replacement_shipped"
            )
        return booking

    # Cases for logistics (local: PostgreSQL only) -------------------------------------
    @activity.defn(name=ActivityName.HOLD_SHIPMENT)
    async def hold_shipment(self, data: ShipmentHoldInput) -> None:
        event = OrderEvent(
            data.order_id,
            f"delivery.booking_refused.{data.attempt}",
            Step.DELIVERY,
            "booking_refused",
            details={"attempt": data.attempt, "reason": data.reason},
        )
        async with self._effects.claim(event) as claimed:
            if claimed:
                await claimed.notify_department(
                    department="logistics",
                    key=f"{data.order_id}:booking_refused:{data.attempt}",
                    kind="booking_refused",
                    context={"reason": data.reason, "attempt": data.attempt},
                )

    @activity.defn(name=ActivityName.OPEN_LOST_PARCEL_CASE)
    async def open_lost_parcel_case(self, data: LostParcelInput) -> None:
        parcel = {
            "carrier": data.carrier,
            "tracking_number": data.tracking_number,
            "reason": data.reason,
            "case_no": data.case_no,
        }
        event = OrderEvent(
            data.order_id,
            f"tracking.lost.{data.case_no}",
            Step.TRACKING,
            "parcel_lost",
            details=parcel,
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return
            await delivery.open_lost_case(
                claimed.conn,
                order_id=data.order_id,
                case_no=data.case_no,
                carrier=data.carrier,
                tracking_number=data.tracking_number,
                reason=data.reason,
                opened_at=claimed.at,
            )
            await claimed.notify_department(
                department="logistics",
                key=f"{data.order_id}:lost:{data.case_no}:logistics",
                kind="parcel_lost",
                context=parcel,
            )
            await claimed.email_customer(
                key=f"{data.order_id}:lost:{data.case_no}:customer", kind="parcel_lost"
            )

    @activity.defn(name=ActivityName.TAKE_REPLACEMENT_STOCK)
    async def take_replacement_stock(self, data: LostParcelResolutionInput) -> ReplacementOutcome:
        async with self._pool.acquire() as conn, conn.transaction():
            await cancellation.lock_order(conn, data.order_id)
            case = await delivery.lost_case(conn, data.order_id, data.case_no)
            if case is None:
                raise ApplicationError(
                    f"order {data.order_id} has no lost-parcel case {data.case_no}",
                    non_retryable=True,
                )
            if case["replacement_no"] == data.reship_no:
                return ReplacementOutcome(taken=True)
            shortages = await delivery.take_replacement_stock(
                conn, data.order_id, data.case_no, data.reship_no
            )
            if shortages:
                return ReplacementOutcome(taken=False, shortages=shortages)
            # Taken once per case (the case's replacement number says so): the event follows.
            await self._effects.claim_in(
                conn,
                OrderEvent(
                    data.order_id,
                    f"tracking.lost.{data.case_no}.replacement",
                    Step.TRACKING,
                    "replacement_stock_taken",
                    actor=data.resolution.by,
                    details={"case_no": data.case_no, "reship_no": data.reship_no},
                ),
            )
            await delivery.note_resolution(
                conn,
                data.order_id,
                data.case_no,
                by=data.resolution.by,
                note=data.resolution.note,
            )
        return ReplacementOutcome(taken=True)

    @activity.defn(name=ActivityName.REFUND_LOST_PARCEL)
    async def refund_lost_parcel(self, data: LostParcelResolutionInput) -> LostParcelOutcome:
        resolution = data.resolution
        reason = "parcel lost in transit"
        async with self._pool.acquire() as conn, conn.transaction():
            await cancellation.lock_order(conn, data.order_id)
            claimed = await self._effects.claim_in(
                conn,
                OrderEvent(
                    data.order_id,
                    f"tracking.lost.{data.case_no}.refunded",
                    Step.TRACKING,
                    "lost_parcel_refunded",
                    status=OrderStatus.CANCELLED,
                    actor=resolution.by,
                    details={"case_no": data.case_no, "note": resolution.note},
                ),
            )
            # Refunded once per order whatever the claim: a retry reads back the same receipt.
            receipt = await refunds.refund(
                conn, refunds.RefundRequest(order_id=data.order_id, reason=reason)
            )
            if claimed:
                await delivery.close_lost_case(
                    conn,
                    data.order_id,
                    data.case_no,
                    status="refunded",
                    by=resolution.by,
                    note=resolution.note,
                )
                await delivery.resolve_follow_ups(conn, data.order_id, "refunded")
                await refunds.tell_customer_closed(
                    conn, self._settings, data.order_id, cause="parcel_lost"
                )
        return LostParcelOutcome(
            order_id=data.order_id,
            action="refund",
            status=OrderStatus.CANCELLED,
            refunded=receipt.amount,
        )
