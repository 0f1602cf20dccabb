"""Refunds of an order's payment, each exactly once per idempotency key, and the customer mail
that tells an order closed.

The storefront's payment provider captured the money; orderflow holds no provider credentials,
so the `refunds` table is the provider's ledger here: a refund row is the instruction finance
pays out, written in the same transaction as the event that caused it (a cancellation, a
rejection, a lost parcel refunded). A refund can so never exist without its cause, nor the
cause without its refund, and a retried activity finds the key taken and pays nothing twice.
A provider with an HTTP API would take the same `RefundRequest` in a regular activity and
pass `idempotency_key` on as its `Idempotency-Key` header.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import asyncpg
from pydantic import BaseModel

from db.repositories import notifications, orders
from orderflow.settings import Settings

# Why an order closed, as its customer mail tells it: a cancel request, a rejected review,
# a lost parcel refunded.
CloseCause = Literal["request", "review", "parcel_lost"]


class RefundRequest(BaseModel):
    order_id: str
    reason: str

    @property
    def idempotency_key(self) -> str:
        # One refund per order: the whole captured amount goes back at once.
        return f"refund-{self.order_id}"


class RefundReceipt(BaseModel):
    idempotency_key: str
    amount: Decimal
    # False when the key was refunded before: nothing was paid this time.
    created: bool


async def refund(conn: asyncpg.Connection, request: RefundRequest) -> RefundReceipt:
    """Refund what was captured (nothing for a payment never captured), once per key."""
    created = await orders.record_refund(conn, request.order_id, request.reason)
    return RefundReceipt(
        idempotency_key=request.idempotency_key,
        amount=await refunded(conn, request.order_id),
        created=created,
    )


async def refunded(conn: asyncpg.Connection, order_id: str) -> Decimal:
    """What the ledger has refunded for the order (0 when nothing)."""
    amount: Decimal | None = await conn.fetchval(
        "SELECT amount FROM refunds WHERE order_id = $1", order_id
    )
    return amount if amount is not None else Decimal("0")


async def tell_customer_closed(
    conn: asyncpg.Connection,
    settings: Settings,
    order_id: str,
    *,
    cause: CloseCause,
    reason: str | None = None,
) -> None:
    """Tell the customer once that the order closed, why, and what was refunded.

    The kind follows the order's status (`order_cancelled`, `order_rejected`). `reason` is
    what the customer may read: the words of a cancel request. A reviewer's note is not
    passed: it is internal.
    """
    status: str = await conn.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id)
    await notifications.email_customer(
        conn,
        settings,
        key=f"{order_id}:closed",
        order_id=order_id,
        kind=f"order_{status.lower()}",
        context={"cause": cause, "reason": reason, "refunded": await refunded(conn, order_id)},
    )


async def refund_and_tell(
    conn: asyncpg.Connection, settings: Settings, order_id: str, *, reason: str
) -> None:
    """Refund a rejected order's payment once and tell the customer."""
    await refund(conn, RefundRequest(order_id=order_id, reason=reason))
    await tell_customer_closed(conn, settings, order_id, cause="review")
