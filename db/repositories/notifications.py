"""The notification outbox: e-mails and department notices, one row per key, sent later."""

from __future__ import annotations

import asyncpg


async def enqueue(
    conn: asyncpg.Connection,
    *,
    key: str,
    order_id: str | None,
    kind: str,
    channel: str,
    recipient: str,
    subject: str,
    body: str,
) -> bool:
    """Queue a notification once; a second call with the same key queues nothing."""
    inserted = await conn.fetchval(
        """INSERT INTO notifications (notification_key, order_id, kind, channel, recipient, subject, body)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (notification_key) DO NOTHING
           RETURNING id""",
        key,
        order_id,
        kind,
        channel,
        recipient,
        subject,
        body,
    )
    return inserted is not None


async def department_lead(conn: asyncpg.Connection, department: str) -> str:
    email: str | None = await conn.fetchval(
        "SELECT lead_email FROM departments WHERE code = $1", department
    )
    return email or f"{department}@orderflow.local"


async def claim_unsent(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Mark a batch sent and return it; SKIP LOCKED lets several dispatchers share the work."""
    return await conn.fetch(
        """UPDATE notifications SET sent_at = now()
           WHERE id IN (SELECT id FROM notifications WHERE sent_at IS NULL
                        ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, order_id, kind, channel, recipient, subject""",
        limit,
    )


async def email_customer(
    conn: asyncpg.Connection,
    *,
    key: str,
    order_id: str,
    kind: str,
    subject: str,
    body: str,
) -> bool:
    """Queue an e-mail to the order's customer once (the address comes from the order)."""
    email: str = await conn.fetchval(
        "SELECT customer_email FROM orders WHERE order_id = $1", order_id
    )
    return await enqueue(
        conn,
        key=key,
        order_id=order_id,
        kind=kind,
        channel="email",
        recipient=email,
        subject=subject,
        body=body,
    )
