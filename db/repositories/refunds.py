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
    inserted = await conn.fetchval(
        """INSERT INTO refunds (order_id, amount, reason)
           SELECT order_id, CASE WHEN status = 'captured' THEN amount ELSE 0 END, $2
           FROM payments WHERE order_id = $1
           ON CONFLICT (order_id) DO NOTHING
           RETURNING order_id""",
        request.order_id,
        request.reason,
    )
    return RefundReceipt(
        idempotency_key=request.idempotency_key,
        amount=await refunded(conn, request.order_id),
        created=inserted is not None,
    )


async def refunded(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> Decimal:
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
    status = await orders.order_status(conn, order_id)
    if status is None:
        raise LookupError(f"order {order_id} is not recorded")
    await notifications.email_customer(
        conn,
        settings,
        key=f"{order_id}:closed",
        order_id=order_id,
        kind=f"order_{status.lower()}",
        context={"cause": cause, "reason": reason, "refunded": await refunded(conn, order_id)},
    )
