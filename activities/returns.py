"""Returns: the return label at the carrier, the parcel on its way back, the warehouse's
inspection (restocked units serve waiting backorders as a goods receipt does) and the refund.

Each effect once, with its event on the order's timeline (`activities/effects.py`). The label
and the refund call outside services: regular activities, each under an idempotency key of
the return's own (`return-label-<return_id>`, `refund-<order_id>-return-<return_id>`).
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.effects import OrderActivities, OrderEvent
from activities.payments import PaymentActivities, operation_key
from activities.psp_client import PspClient
from db.repositories import inventory
from db.repositories import returns as repo
from orderflow.models import Step
from orderflow.models.activity_names import UNPROCESSABLE, ActivityName
from orderflow.models.returns import (
    Restocked,
    ReturnDecisionInput,
    ReturnDecisionNeeded,
    ReturnExchangeInput,
    ReturnInspectionInput,
    ReturnLabel,
    ReturnLabelInput,
    ReturnLabelRequest,
    ReturnLabelResponse,
    ReturnOrigin,
    ReturnRef,
    ReturnRefundInput,
    ReturnRefundOutcome,
    ReturnStatus,
    ReturnTracking,
    decision_key,
)
from orderflow.settings import Settings

# Who inspects a parcel that came back, and whose lead hears of one left waiting.
WAREHOUSE = "warehouse"
# Who decides a return outside the automatic rules.
CUSTOMER_SERVICE = "customer_service"


def label_key(return_id: str) -> str:
    return f"return-label-{return_id}"


def refund_key(order_id: str, return_id: str) -> str:
    return operation_key("refund", order_id, f"return-{return_id}")


class ReturnActivities(OrderActivities):
    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, http: httpx.AsyncClient, psp: PspClient
    ) -> None:
        super().__init__(pool, settings)
        self._http = http
        self._payments = PaymentActivities(pool, settings, psp)

    @activity.defn(name=ActivityName.ASK_RETURN_DECISION)
    async def ask_return_decision(self, data: ReturnDecisionNeeded) -> None:
        """A return outside the automatic rules, or whose label the carrier refused, waits in
        customer service's queue."""
        event = OrderEvent(
            data.order_id,
            decision_key(data.return_id, "decision_asked", data.round),
            Step.COMPLETION,
            "return_decision_asked",
            details={"return_id": data.return_id, "why": data.why},
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return
            await repo.mark(claimed.conn, data.return_id, ReturnStatus.REQUESTED, claimed.at)
            suffix = "" if data.round == 0 else f":{data.round}"
            await claimed.notify_department(
                department=CUSTOMER_SERVICE,
                key=f"{data.order_id}:return_decision:{data.return_id}{suffix}",
                kind="return_decision_needed",
                context={"return_id": data.return_id, "why": data.why},
            )

    @activity.defn(name=ActivityName.RECORD_RETURN_DECISION)
    async def record_return_decision(self, data: ReturnDecisionInput) -> None:
        """Customer service's answer; a refused return is told to the customer and holds
        no quantity any more."""
        decision = data.decision
        status = ReturnStatus.APPROVED if decision.approve else ReturnStatus.REJECTED
        event = OrderEvent(
            data.order_id,
            decision_key(data.return_id, "decided", data.round),
            Step.COMPLETION,
            f"return_{status.lower()}",
            actor=decision.by,
            details={"return_id": data.return_id, "note": decision.note},
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return
            await repo.mark(claimed.conn, data.return_id, status, claimed.at)
            if not decision.approve:
                await claimed.email_customer(
                    key=f"{data.order_id}:return_rejected:{data.return_id}",
                    kind="return_rejected",
                    context={
                        "return_id": data.return_id,
                        "return_lines": await repo.lines_for_notice(claimed.conn, data.return_id),
                    },
                )

    @activity.defn(name=ActivityName.BOOK_RETURN_LABEL)
    async def book_return_label(self, ref: ReturnLabelInput) -> ReturnLabel:
        """A return label with the carrier that delivered the order, once per return; the
        customer gets it by e-mail."""
        stored = await repo.return_of(self._pool, ref.return_id)
        if stored is None:
            raise ApplicationError(
                f"return {ref.return_id} is not recorded", type=UNPROCESSABLE, non_retryable=True
            )
        if stored["tracking_number"] is not None:
            return ReturnLabel(
                carrier=stored["carrier"],
                tracking_number=stored["tracking_number"],
                label_url=stored["label_url"],
            )
        parcel = await repo.parcel_facts(self._pool, ref.order_id)
        if parcel is None:
            raise ApplicationError(
                f"order {ref.order_id} has no parcel to return",
                type=UNPROCESSABLE,
                non_retryable=True,
            )
        carrier = parcel["carrier"]
        request = ReturnLabelRequest(
            order_id=ref.order_id,
            return_id=ref.return_id,
            weight_kg=float(parcel["weight_kg"]),
            origin=ReturnOrigin(
                country=parcel["shipping_country"], postal_code=parcel["shipping_postal"]
            ),
            webhook_url=f"{self._settings.carrier_webhook_base_url}/carriers/{carrier}/events",
        )
        response = await self._http.post(
            f"{self._settings.carrier_api_url}/carriers/{carrier}/returns",
            json=request.model_dump(mode="json", exclude_none=True),
            headers={"Idempotency-Key": label_key(ref.return_id)},
            timeout=self._settings.carrier_http_timeout_seconds,
        )
        if 400 <= response.status_code < 500 and response.status_code not in (408, 409, 429):
            raise ApplicationError(
                f"carrier {carrier} refused the return label: {response.status_code} "
                f"{response.text}",
                type="CarrierRefused",
                non_retryable=True,
            )
        response.raise_for_status()
        booked = ReturnLabelResponse.model_validate(response.json())
        label = ReturnLabel(
            carrier=carrier, tracking_number=booked.tracking_number, label_url=booked.label_url
        )
        event = OrderEvent(
            ref.order_id,
            f"return.{ref.return_id}.label",
            Step.COMPLETION,
            "return_label_booked",
            details={"return_id": ref.return_id, **label.model_dump(mode="json")},
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return label
            await repo.set_label(
                claimed.conn,
                ref.return_id,
                carrier=carrier,
                tracking_number=label.tracking_number,
                label_url=label.label_url,
                at=claimed.at,
            )
            await claimed.email_customer(
                key=f"{ref.order_id}:return_label:{ref.return_id}",
                kind="return_label",
                context={
                    "return_id": ref.return_id,
                    "return_lines": await repo.lines_for_notice(claimed.conn, ref.return_id),
                    "return_tracking_number": label.tracking_number,
                    "label_url": label.label_url,
                    "send_back_by": ref.send_back_by,
                },
            )
        return label

    @activity.defn(name=ActivityName.RECORD_RETURN_TRACKING)
    async def record_return_tracking(self, data: ReturnTracking) -> None:
        """The parcel handed to the carrier (IN_TRANSIT) or back at the warehouse (ARRIVED)."""
        status = ReturnStatus(data.status)
        event = OrderEvent(
            data.order_id,
            f"return.{data.return_id}.{status.lower()}",
            Step.COMPLETION,
            f"return_{status.lower()}",
            details={"return_id": data.return_id, "at": data.at.isoformat()},
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return
            await repo.mark(claimed.conn, data.return_id, status, data.at)

    @activity.defn(name=ActivityName.CLOSE_UNSENT_RETURN)
    async def close_unsent_return(self, ref: ReturnRef) -> None:
        """The parcel was not sent back in time: the return closes, nothing refunded."""
        event = OrderEvent(
            ref.order_id,
            f"return.{ref.return_id}.not_sent",
            Step.COMPLETION,
            "return_not_sent_back",
            details={"return_id": ref.return_id},
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return
            await repo.close(
                claimed.conn,
                ref.return_id,
                ReturnStatus.CLOSED,
                refund_amount=Decimal("0.00"),
                at=claimed.at,
            )
            await claimed.email_customer(
                key=f"{ref.order_id}:return_closed:{ref.return_id}",
                kind="return_closed",
                context={"return_id": ref.return_id},
            )

    @activity.defn(name=ActivityName.NOTIFY_RETURN_INSPECTION_OVERDUE)
    async def notify_return_inspection_overdue(self, ref: ReturnRef) -> None:
        event = OrderEvent(
            ref.order_id,
            f"return.{ref.return_id}.inspection_overdue",
            Step.COMPLETION,
            "return_inspection_overdue",
            details={"return_id": ref.return_id},
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return
            await claimed.notify_department(
                department=WAREHOUSE,
                key=f"{ref.order_id}:return_inspection_overdue:{ref.return_id}",
                kind="return_inspection_overdue",
                context={"return_id": ref.return_id},
            )

    @activity.defn(name=ActivityName.RECORD_RETURN_INSPECTION)
    async def record_return_inspection(self, data: ReturnInspectionInput) -> Restocked:
        """One line's finding; restocked units go back on hand and serve the orders waiting
        for the SKU, oldest first, as a goods receipt does."""
        sku, outcome = data.line.sku, data.line.outcome
        event = OrderEvent(
            data.order_id,
            f"return.{data.return_id}.inspected.{sku}",
            Step.COMPLETION,
            f"return_line_{'restocked' if outcome == 'restock' else 'disposed'}",
            actor=data.by,
            details={"return_id": data.return_id, "sku": sku, "note": data.line.note},
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return Restocked(
                    served_orders=await repo.served_by(self._pool, data.return_id, sku)
                )
            await repo.inspect_line(
                claimed.conn,
                data.return_id,
                sku,
                outcome=outcome,
                note=data.line.note,
                by=data.by,
                at=claimed.at,
            )
            if outcome != "restock":
                return Restocked()
            # Inside the event's transaction, unlike a goods receipt: the units on hand, the
            # orders they serve and the line's finding are recorded together or not at all.
            receipt = await inventory.receive_stock(
                claimed.conn,
                sku=sku,
                quantity=data.quantity,
                receipt_key=f"return-{data.return_id}-{sku}",
                received_by=f"return:{data.return_id}",
            )
            await repo.set_served(claimed.conn, data.return_id, sku, receipt.served_orders)
            return Restocked(served_orders=receipt.served_orders)

    @activity.defn(name=ActivityName.REFUND_RETURN)
    async def refund_return(self, data: ReturnRefundInput) -> ReturnRefundOutcome:
        """The refund of the accepted lines through the payment adapter, once per return
        (nothing to pay closes it without one); the customer told of it."""
        if data.amount > 0:
            status = ReturnStatus.REFUNDED
        else:
            status = ReturnStatus.EXCHANGED if data.exchanged else ReturnStatus.CLOSED
        psp_id = None
        if data.amount > 0:
            result = await self._payments.send_refund(
                data.order_id,
                refund_key(data.order_id, data.return_id),
                data.amount,
                f"return {data.return_id}",
            )
            if not result.ok:
                # Refused by the PSP: finance has it in its queue (activities/payments.py)
                # and retries it there; the return stays inspected until then.
                return ReturnRefundOutcome(status=ReturnStatus.INSPECTED, amount=data.amount)
            psp_id = result.psp_id
        event = OrderEvent(
            data.order_id,
            f"return.{data.return_id}.{status.lower()}",
            Step.COMPLETION,
            f"return_{status.lower()}",
            details={"return_id": data.return_id, "amount": str(data.amount), "psp_id": psp_id},
        )
        async with self._effects.claim(event) as claimed:
            if claimed is not None:
                await repo.close(
                    claimed.conn, data.return_id, status, refund_amount=data.amount, at=claimed.at
                )
                await claimed.email_customer(
                    key=f"{data.order_id}:return_done:{data.return_id}",
                    kind="return_completed",
                    context={
                        "return_id": data.return_id,
                        "return_lines": await repo.lines_for_notice(claimed.conn, data.return_id),
                        "refund_amount": data.amount,
                    },
                )
        return ReturnRefundOutcome(status=status, amount=data.amount)

    @activity.defn(name=ActivityName.RECORD_EXCHANGE)
    async def record_exchange(self, data: ReturnExchangeInput) -> None:
        """The replacement order for the exchanged lines, linked to the return and shown on
        the original order's timeline; the customer is told it is on its way at no charge.
        Recorded before the workflow starts the replacement, whose id is fixed, so a retry
        finds both as they are."""
        event = OrderEvent(
            data.order_id,
            f"return.{data.return_id}.exchange_placed",
            Step.COMPLETION,
            "return_exchange_placed",
            details={
                "return_id": data.return_id,
                "replacement_order_id": data.replacement_order_id,
            },
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return
            await repo.set_replacement(claimed.conn, data.return_id, data.replacement_order_id)
            await claimed.email_customer(
                key=f"{data.order_id}:return_exchange:{data.return_id}",
                kind="return_exchange",
                context={
                    "return_id": data.return_id,
                    "replacement_order_id": data.replacement_order_id,
                    "return_lines": await repo.lines_for_notice(
                        claimed.conn, data.return_id, resolution="exchange"
                    ),
                },
            )
