"""The payment service provider's webhook and finance's view of an order's payment.

- `POST /payments/events`: the PSP's signed events (capture and refund outcomes, disputes),
  each applied at most once by its `event_id`;
- `GET /payments/{order_id}` (admin): the order's ledger, its operations, disputes and the
  PSP's events about it;
- `POST /payments/{order_id}/refunds/retry` (admin): send a failed refund again, under a
  new idempotency key that names the failed one;
- `POST /payments/{order_id}/capture/retry` (admin, for finance): an order whose capture
  the PSP refused waits at PACKED; this asks the order to capture again (and ship once it
  is paid). To give up instead, cancel the order: its authorisation is voided.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from pydantic import BaseModel, Field, ValidationError
from temporalio.exceptions import ApplicationError

from activities.effects import Effects
from activities.payments import PaymentActivities, apply_webhook_event, order_of_event
from activities.psp_client import PspClient, PspUnavailable
from api.auth import Principal, require
from api.deps import (
    order_client_of,
    order_status_or_404,
    pool_of,
    settings_of,
    workflow_errors_as_http,
)
from db.repositories import payments
from orderflow.models.messages import CaptureRetry
from orderflow.models.payments import PaymentResult
from orderflow.models.psp import PspWebhookEvent
from orderflow.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

router = APIRouter(tags=["payments"])


class PspEventOutcome(BaseModel):
    event_id: str
    # applied | duplicate
    outcome: str
    order_id: str | None = None


class PaymentLedger(BaseModel):
    order_id: str
    transaction_id: str
    method: str
    currency: str
    amount: Decimal
    checkout_status: str
    authorization_expires_at: datetime | None
    captured: Decimal
    refunded: Decimal
    refunding: Decimal
    voided: bool
    disputed: Decimal
    shipped: bool
    operations: list[dict[str, Any]]
    disputes: list[dict[str, Any]]
    webhook_events: list[dict[str, Any]]


@router.post("/payments/events", response_model=PspEventOutcome)
async def psp_event(
    request: Request,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
) -> PspEventOutcome:
    body = await request.body()
    settings = settings_of(request)
    if not verify_signature(
        settings.psp_webhook_secret, body, timestamp, signature, now=int(time.time())
    ):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid PSP signature")
    try:
        event = PspWebhookEvent.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(422, f"invalid PSP event: {exc.errors()[0]['msg']}") from exc

    pool = pool_of(request)
    async with pool.acquire() as conn, conn.transaction():
        order_id = await order_of_event(conn, event)
        if order_id is not None and event.type != "dispute.opened":
            if await payments.operation_by_psp_id(conn, event.object_id) is None:
                # The PSP may answer before the activity that asked has stored its answer:
                # refused unrecorded, so the PSP's retry applies it once the shop knows it.
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    f"no operation {event.object_id} of transaction {event.transaction_id} "
                    "is recorded yet; retry later",
                )
        recorded = await payments.record_webhook_event(
            conn,
            event_id=event.event_id,
            type=event.type,
            transaction_id=event.transaction_id,
            object_id=event.object_id,
            amount=event.amount,
            occurred_at=event.at,
            order_id=order_id,
            outcome="applied" if order_id is not None else "unknown_payment",
        )
        if recorded and order_id is not None:
            await apply_webhook_event(Effects(pool, settings), conn, event, order_id)
    if order_id is None:
        # Recorded above for finance to look at, and refused.
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no order is paid by transaction {event.transaction_id}"
        )
    return PspEventOutcome(
        event_id=event.event_id,
        outcome="applied" if recorded else "duplicate",
        order_id=order_id,
    )


@router.get("/payments/{order_id}", response_model=PaymentLedger)
async def payment_ledger(
    order_id: str, request: Request, _: Annotated[Principal, Depends(require("admin"))]
) -> PaymentLedger:
    """The order's payment: checkout, what was captured, refunded and disputed, and every
    operation with its idempotency key and outcome."""
    pool = pool_of(request)
    ledger = await payments.ledger(pool, order_id)
    if ledger is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {order_id} has no payment")
    return PaymentLedger(
        order_id=order_id,
        transaction_id=ledger["transaction_id"],
        method=ledger["method"],
        currency=ledger["currency"],
        amount=ledger["amount"],
        checkout_status=ledger["checkout_status"],
        authorization_expires_at=ledger["expires_at"],
        captured=ledger["captured"],
        refunded=ledger["refunded"],
        refunding=ledger["refunding"],
        voided=ledger["voided"],
        disputed=ledger["disputed"],
        shipped=ledger["shipped"],
        operations=[_plain(r) for r in await payments.operations(pool, order_id)],
        disputes=[_plain(r) for r in await payments.disputes(pool, order_id)],
        webhook_events=[_plain(r) for r in await payments.webhook_events(pool, order_id)],
    )


@router.post("/payments/{order_id}/refunds/retry", response_model=PaymentResult)
async def retry_refund(
    order_id: str, request: Request, who: Annotated[Principal, Depends(require("admin"))]
) -> PaymentResult:
    """Send the order's oldest failed refund again, under a new idempotency key derived
    from the failed one (so a repeated click sends it once); 409 when none failed."""
    pool, settings = pool_of(request), settings_of(request)
    failed = await payments.failed_refund(pool, order_id)
    if failed is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"order {order_id} has no failed refund")
    async with PspClient(settings) as psp:
        try:
            return await PaymentActivities(pool, settings, psp).send_refund(
                order_id,
                f"{failed['idempotency_key']}-retry",
                failed["amount"],
                failed["reason"] or "refund sent again",
                requested_by=who.actor,
                retry_of=failed["idempotency_key"],
            )
        except PspUnavailable as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"the PSP is unavailable: {exc.detail}"
            ) from exc
        except ApplicationError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


class CaptureRetryBody(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


class CaptureRetryResponse(BaseModel):
    order_id: str
    status: str
    # Still `payment_capture` when the PSP refused again.
    awaiting: str | None


@router.post("/payments/{order_id}/capture/retry", response_model=CaptureRetryResponse)
async def retry_capture(
    order_id: str,
    body: CaptureRetryBody,
    request: Request,
    who: Annotated[Principal, Depends(require("admin"))],
) -> CaptureRetryResponse:
    """Capture a held order's payment again; answers once the PSP has answered. 409 when the
    order is not waiting for its capture."""
    await order_status_or_404(request, order_id)
    with workflow_errors_as_http(order_id):
        view = await order_client_of(request).retry_capture(
            order_id, CaptureRetry(by=who.actor, note=body.note)
        )
    return CaptureRetryResponse(order_id=order_id, status=view.status, awaiting=view.awaiting)


def _plain(row: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in dict(row).items()}
