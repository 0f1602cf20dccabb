"""Refunds of an order's payment, once per order (the order id is the idempotency key)."""

from __future__ import annotations

import asyncpg

from db.repositories import notifications, orders


async def refund_and_tell(conn: asyncpg.Connection, order_id: str, *, reason: str) -> None:
    """Refund the order's payment once and tell the customer why the order closed."""
    await orders.record_refund(conn, order_id, reason)
    row = await conn.fetchrow(
        "SELECT customer_email, status FROM orders WHERE order_id = $1", order_id
    )
    await notifications.enqueue(
        conn,
        key=f"{order_id}:closed",
        order_id=order_id,
        kind=f"order_{row['status'].lower()}",
        channel="email",
        recipient=row["customer_email"],
        subject=f"Order {order_id} is {row['status'].lower()}",
        body=f"Your payment is refunded in full. Reason: {reason}.",
    )
