"""The order's payment at the payment service provider (PSP): capture, void, refund and
renew the authorisation.

They call an outside service, so they run as regular activities with Temporal's retries.
Each first writes its operation row (`payment_operations`) under an idempotency key made of
the order and the operation (`capture-<order>-<n>`), then calls the PSP with that key: a
retried activity finds its row and sends the same key, and the PSP moves the money once.
The PSP's answer, the row's outcome and an order event are then written in one transaction
(`Effects.claim`). An operation whose outcome is already known is not sent again.

What the answers mean for the order:
- a refusal (402: `authorization_expired`, `declined`) is a result, `ok=False`;
- `PspUnavailable` (the client's own retries spent) raises: Temporal retries the activity;
- any other refusal of the request (404, 409, 422, ...) cannot pass by retrying: it is
  recorded as `failed` (a capture or refund then waits in finance's queue) and raised as a
  non-retryable `ApplicationError`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.effects import Effects, OrderActivities, OrderEvent
from activities.psp_client import (
    PaymentRefused,
    PspClient,
    PspClientError,
    PspUnavailable,
)
from db.repositories import orders, payments
from orderflow.models import OrderStatus, Step
from orderflow.models.activity_names import PAYMENT_REJECTED, ActivityName
from orderflow.models.payments import (
    CaptureInput,
    CaptureResult,
    PaymentOperationKind,
    PaymentResult,
    ReauthorizeResult,
    RefundInput,
    RefundResult,
    VoidResult,
)
from orderflow.models.psp import PaymentFacts, PspWebhookEvent
from orderflow.models.status import STEP_OF_STATUS
from orderflow.settings import Settings

# Finance is told of failed captures and refunds and of disputes.
FINANCE = "finance"

_RESULTS: dict[PaymentOperationKind, type[PaymentResult]] = {
    "capture": CaptureResult,
    "void": VoidResult,
    "refund": RefundResult,
    "reauthorization": ReauthorizeResult,
}


def operation_key(kind: PaymentOperationKind, order_id: str, n: int | str) -> str:
    """The PSP's idempotency key of an order's n-th operation of `kind`."""
    return f"{kind}-{order_id}-{n}"


def event_key(idempotency_key: str, status: str) -> str:
    """The order event of an operation's outcome: one per operation and outcome."""
    return f"payment.{idempotency_key}.{status}"


def event_kind(kind: str, status: str) -> str:
    return f"payment_{kind}_{status}"


def facts_of(payment: asyncpg.Record) -> PaymentFacts:
    """What checkout left, as the PSP's operations carry it. Always the checkout's values,
    never a renewed expiry: a retried request must carry the body it was first sent with."""
    status = payment["status"]
    if status not in ("authorized", "captured"):
        raise ApplicationError(
            f"the order's payment is {status}: there is nothing at the PSP to act on",
            type=PAYMENT_REJECTED,
            non_retryable=True,
        )
    return PaymentFacts(
        amount=payment["amount"],
        currency=payment["currency"],
        status=status,
        authorization_expires_at=payment["authorization_expires_at"],
    )


async def step_of_order(conn: asyncpg.Connection, order_id: str) -> int:
    """The step the order is at: its payment events belong on the timeline there."""
    status = await orders.order_status(conn, order_id)
    if status is None:
        raise ApplicationError(
            f"order {order_id} is not recorded", type=PAYMENT_REJECTED, non_retryable=True
        )
    return int(STEP_OF_STATUS.get(OrderStatus(status), Step.DELIVERY))


class PaymentActivities(OrderActivities):
    def __init__(self, pool: asyncpg.Pool, settings: Settings, psp: PspClient) -> None:
        super().__init__(pool, settings)
        self._psp = psp

    # ------------------------------------------------------------------ activities
    @activity.defn(name=ActivityName.CAPTURE_PAYMENT)
    async def capture_payment(self, data: CaptureInput) -> CaptureResult:
        key = operation_key("capture", data.order_id, data.sequence)
        return CaptureResult.model_validate(
            (await self.send_capture(data.order_id, key, data.amount)).model_dump()
        )

    @activity.defn(name=ActivityName.VOID_PAYMENT)
    async def void_payment(self, order_id: str) -> VoidResult:
        # An authorisation is released once: there is one void per order.
        key = operation_key("void", order_id, 1)
        payment, row = await self._claim(order_id, "void", key)
        if row["status"] in payments.FINAL_STATUSES:
            return VoidResult.model_validate(_known(row).model_dump())
        try:
            await self._psp.void(payment["transaction_id"], facts_of(payment), key)
        except PspClientError as exc:
            return VoidResult.model_validate((await self._refused(row, exc)).model_dump())
        return VoidResult.model_validate((await self._record(row, status="succeeded")).model_dump())

    @activity.defn(name=ActivityName.REFUND_PAYMENT)
    async def refund_payment(self, data: RefundInput) -> RefundResult:
        key = operation_key("refund", data.order_id, data.sequence)
        result = await self.send_refund(data.order_id, key, data.amount, data.reason)
        return RefundResult.model_validate(result.model_dump())

    @activity.defn(name=ActivityName.REAUTHORIZE_PAYMENT)
    async def reauthorize_payment(self, order_id: str) -> ReauthorizeResult:
        payment = await self._payment(order_id)
        # Keyed by the expiry it renews: a retry renews the same authorisation once, a
        # later renewal (after this one moved the expiry) is a new operation.
        current = payment["expires_at"]
        stamp = int(current.timestamp()) if current is not None else 0
        key = operation_key("reauthorization", order_id, stamp)
        payment, row = await self._claim(order_id, "reauthorization", key)
        if row["status"] in payments.FINAL_STATUSES:
            return ReauthorizeResult.model_validate(
                _known(row).model_dump() | {"authorization_expires_at": current}
            )
        try:
            renewed = await self._psp.reauthorize(payment["transaction_id"], facts_of(payment), key)
        except PspClientError as exc:
            return ReauthorizeResult.model_validate((await self._refused(row, exc)).model_dump())
        result = await self._record(
            row,
            status="succeeded",
            details={"authorization_expires_at": _iso(renewed.authorization_expires_at)},
            expires_at=renewed.authorization_expires_at,
        )
        return ReauthorizeResult.model_validate(
            result.model_dump() | {"authorization_expires_at": renewed.authorization_expires_at}
        )

    # ------------------------------------------------------------------ shared by the API
    async def send_capture(self, order_id: str, key: str, amount: Decimal) -> PaymentResult:
        payment, row = await self._claim(order_id, "capture", key, amount=amount)
        if row["status"] in payments.FINAL_STATUSES:
            return _known(row)
        try:
            capture = await self._psp.capture(
                payment["transaction_id"], row["amount"], facts_of(payment), key
            )
        except PspClientError as exc:
            return await self._refused(row, exc)
        status = "succeeded" if capture.status == "succeeded" else capture.status
        return await self._record(
            row,
            status=status,
            psp_id=capture.capture_id,
            failure_code=capture.failure_code,
        )

    async def send_refund(
        self,
        order_id: str,
        key: str,
        amount: Decimal | None,
        reason: str,
        *,
        requested_by: str = "system",
        retry_of: str | None = None,
    ) -> PaymentResult:
        """Refund `amount` (None: what is left to refund) under `key`; a person's retry of a
        failed refund names it in `retry_of`."""
        existing = await payments.operation(self._pool, key)
        if existing is None and amount is None:
            ledger = await payments.ledger(self._pool, order_id)
            if ledger is None:
                raise ApplicationError(
                    f"order {order_id} has no payment", type=PAYMENT_REJECTED, non_retryable=True
                )
            amount = ledger["captured"] - ledger["refunded"] - ledger["refunding"]
            if amount <= 0:
                # Nothing captured (an authorisation only), or all of it refunded already.
                return RefundResult(ok=True, status="nothing", amount=Decimal("0.00"))
        payment, row = await self._claim(
            order_id,
            "refund",
            key,
            amount=amount,
            reason=reason,
            requested_by=requested_by,
            retry_of=retry_of,
        )
        if row["status"] in payments.FINAL_STATUSES or row["psp_id"] is not None:
            # Settled or failed by the PSP's webhook since, or sent and still pending.
            return _known(row)
        try:
            refund = await self._psp.refund(
                payment["transaction_id"], row["amount"], facts_of(payment), key, reason=reason
            )
        except PspClientError as exc:
            return await self._refused(row, exc)
        return await self._record(
            row, status=refund.status, psp_id=refund.refund_id, failure_code=refund.failure_code
        )

    # ------------------------------------------------------------------ the ledger
    async def _payment(self, order_id: str) -> asyncpg.Record:
        payment = await payments.payment_of(self._pool, order_id)
        if payment is None:
            raise ApplicationError(
                f"order {order_id} has no payment", type=PAYMENT_REJECTED, non_retryable=True
            )
        return payment

    async def _claim(
        self, order_id: str, kind: PaymentOperationKind, key: str, **fields: Any
    ) -> tuple[asyncpg.Record, asyncpg.Record]:
        """The payment and the operation's row, written before the PSP is called."""
        payment = await self._payment(order_id)
        row = await payments.claim_operation(
            self._pool, order_id=order_id, kind=kind, idempotency_key=key, **fields
        )
        return payment, row

    async def _refused(self, row: asyncpg.Record, exc: PspClientError) -> PaymentResult:
        """A refusal is the answer; a PSP that stays unavailable is retried by Temporal;
        any other refusal of the request is recorded and ends the activity for good."""
        if isinstance(exc, PspUnavailable):
            raise exc
        if isinstance(exc, PaymentRefused):
            return await self._record(row, status="refused", failure_code=exc.code)
        await self._record(row, status="failed", failure_code=exc.code)
        raise ApplicationError(
            f"the PSP refused the {row['kind']} of order {row['order_id']}: {exc}",
            type=PAYMENT_REJECTED,
            non_retryable=True,
        ) from exc

    async def _record(
        self,
        row: asyncpg.Record,
        *,
        status: str,
        psp_id: str | None = None,
        failure_code: str | None = None,
        details: dict[str, Any] | None = None,
        expires_at: datetime | None = None,
    ) -> PaymentResult:
        """The PSP's answer on the operation's row and the order's timeline, at once."""
        order_id, kind, key = row["order_id"], row["kind"], row["idempotency_key"]
        async with self._pool.acquire() as conn, conn.transaction():
            updated = await payments.record_outcome(
                conn, key, status=status, psp_id=psp_id, failure_code=failure_code
            )
            assert updated is not None
            event = OrderEvent(
                order_id,
                event_key(key, status),
                await step_of_order(conn, order_id),
                event_kind(kind, status),
                details={
                    "idempotency_key": key,
                    "amount": None if row["amount"] is None else str(row["amount"]),
                    "psp_id": psp_id,
                    "code": failure_code,
                    **(details or {}),
                },
            )
            claimed = await self._effects.claim_in(conn, event)
            if claimed is not None:
                if expires_at is not None:
                    await payments.renew_authorization(conn, order_id, expires_at)
                if status in ("failed", "refused") and kind in ("capture", "refund"):
                    await claimed.notify_department(
                        department=FINANCE,
                        key=f"{order_id}:payment_problem:{key}",
                        kind="payment_problem",
                        context=await problem_context(conn, updated),
                    )
        return _known(updated)


async def problem_context(conn: asyncpg.Connection, row: asyncpg.Record) -> dict[str, Any]:
    """What finance's lead reads of a failed capture or refund."""
    payment = await payments.payment_of(conn, row["order_id"])
    return {
        "operation": row["kind"],
        "amount": row["amount"],
        "currency": payment["currency"] if payment else "",
        "failure_code": row["failure_code"],
        "idempotency_key": row["idempotency_key"],
    }


def _known(row: asyncpg.Record) -> PaymentResult:
    """The result an operation's row stands for."""
    status = row["status"]
    return _RESULTS[row["kind"]](
        operation=row["kind"],
        ok=status in ("pending", "succeeded", "settled"),
        status=status,
        code=row["failure_code"],
        idempotency_key=row["idempotency_key"],
        psp_id=row["psp_id"],
        amount=row["amount"],
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


# ------------------------------------------------------------------ the PSP's webhook
# What each event makes of the operation it is about.
_SETTLED_AS = {
    "capture.succeeded": "succeeded",
    "capture.failed": "failed",
    "refund.settled": "settled",
    "refund.failed": "failed",
}


async def order_of_event(conn: asyncpg.Connection, event: PspWebhookEvent) -> str | None:
    """The order a PSP event is about: through the capture or refund it names, else through
    its transaction; None when the shop holds no such payment."""
    if event.type in _SETTLED_AS:
        row = await payments.operation_by_psp_id(conn, event.object_id)
        if row is not None:
            return str(row["order_id"])
    return await payments.order_for_transaction(conn, event.transaction_id)


async def apply_webhook_event(
    effects: Effects, conn: asyncpg.Connection, event: PspWebhookEvent, order_id: str
) -> None:
    """Apply a PSP event, already recorded once by its id, on `conn` (in its transaction):
    the operation's outcome, a dispute for finance, and the order's timeline event."""
    step = await step_of_order(conn, order_id)
    if event.type == "dispute.opened":
        await payments.open_dispute(
            conn,
            dispute_id=event.object_id,
            order_id=order_id,
            amount=event.amount,
            reason=event.reason or "not stated",
            opened_at=event.at,
        )
        claimed = await effects.claim_in(
            conn,
            OrderEvent(
                order_id,
                f"payment.dispute.{event.object_id}",
                step,
                "payment_dispute_opened",
                actor="psp",
                # The order goes on: a dispute is finance's task, not a new status.
                details={"dispute_id": event.object_id, "amount": str(event.amount)},
            ),
        )
        if claimed is not None:
            payment = await payments.payment_of(conn, order_id)
            await claimed.notify_department(
                department=FINANCE,
                key=f"{order_id}:payment_dispute:{event.object_id}",
                kind="payment_dispute",
                context={
                    "dispute_id": event.object_id,
                    "amount": event.amount,
                    "currency": payment["currency"] if payment else "",
                    "reason": event.reason or "not stated",
                },
            )
        return
    status = _SETTLED_AS[event.type]
    row = await payments.settle_operation(
        conn,
        event.object_id,
        status=status,
        failure_code=event.reason if status == "failed" else None,
    )
    kind = event.type.partition(".")[0]
    key = row["idempotency_key"] if row is not None else f"{kind}.{event.object_id}"
    claimed = await effects.claim_in(
        conn,
        OrderEvent(
            order_id,
            event_key(key, status),
            step,
            event_kind(kind, status),
            actor="psp",
            details={
                "idempotency_key": row["idempotency_key"] if row is not None else None,
                "psp_id": event.object_id,
                "amount": str(event.amount),
                "code": event.reason if status == "failed" else None,
            },
        ),
    )
    if claimed is not None and status == "failed" and row is not None:
        await claimed.notify_department(
            department=FINANCE,
            key=f"{order_id}:payment_problem:{key}",
            kind="payment_problem",
            context=await problem_context(conn, row),
        )
