"""The payment ledger: the order's payment as checkout left it, every operation the shop
asked of the PSP (`payment_operations`, written before the PSP is called), the PSP's webhook
events and the disputes finance answers.

What the shop captured, voided and refunded is derived from the operations, never stored
twice: `ledger` sums them per order (a payment captured at checkout counts as captured).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

# The statuses after which an operation's outcome is known; the PSP is not asked again.
FINAL_STATUSES = ("succeeded", "settled", "failed", "refused")

# One order's money as the ledger tells it (a row per order: `ledger`, `ledgers`).
_LEDGER = """
    SELECT p.order_id, p.transaction_id, p.method, p.amount, p.currency,
           p.status AS checkout_status,
           COALESCE(p.authorization_renewed_until, p.authorization_expires_at) AS expires_at,
           o.status AS order_status,
           EXISTS (SELECT 1 FROM shipments s WHERE s.order_id = p.order_id) AS shipped,
           (CASE WHEN p.status = 'captured' THEN p.amount ELSE 0 END)
             + COALESCE((SELECT sum(c.amount) FROM payment_operations c
                         WHERE c.order_id = p.order_id AND c.kind = 'capture'
                           AND c.status IN ('succeeded', 'settled')), 0) AS captured,
           COALESCE((SELECT sum(r.amount) FROM payment_operations r
                     WHERE r.order_id = p.order_id AND r.kind = 'refund'
                       AND r.status = 'settled'), 0) AS refunded,
           COALESCE((SELECT sum(r.amount) FROM payment_operations r
                     WHERE r.order_id = p.order_id AND r.kind = 'refund'
                       AND r.status = 'pending' AND r.psp_id IS NOT NULL), 0) AS refunding,
           EXISTS (SELECT 1 FROM payment_operations v
                   WHERE v.order_id = p.order_id AND v.kind = 'void'
                     AND v.status = 'succeeded') AS voided,
           COALESCE((SELECT sum(d.amount) FROM payment_disputes d
                     WHERE d.order_id = p.order_id), 0) AS disputed,
           (SELECT count(*) FROM payment_operations x WHERE x.order_id = p.order_id)
             AS operations
    FROM payments p JOIN orders o ON o.order_id = p.order_id
"""


# ------------------------------------------------------------------ the order's payment
async def payment_of(conn: Conn, order_id: str) -> asyncpg.Record | None:
    """The order's payment as checkout left it (`authorization_expires_at` as checkout
    said), with its authorisation's current expiry (`expires_at`, after any renewal)."""
    return await conn.fetchrow(
        """SELECT order_id, method, transaction_id, amount, currency, status,
                  authorization_expires_at,
                  COALESCE(authorization_renewed_until, authorization_expires_at) AS expires_at
           FROM payments WHERE order_id = $1""",
        order_id,
    )


async def order_for_transaction(conn: Conn, transaction_id: str) -> str | None:
    """The order paid by `transaction_id` (the latest, should a storefront reuse one)."""
    order_id: str | None = await conn.fetchval(
        """SELECT order_id FROM payments WHERE transaction_id = $1
           ORDER BY recorded_at DESC, order_id LIMIT 1""",
        transaction_id,
    )
    return order_id


async def renew_authorization(
    conn: asyncpg.Connection, order_id: str, expires_at: datetime | None
) -> None:
    """The authorisation now lapses at `expires_at` (a reauthorisation succeeded)."""
    await conn.execute(
        "UPDATE payments SET authorization_renewed_until = $2 WHERE order_id = $1",
        order_id,
        expires_at,
    )


# ------------------------------------------------------------------ operations
async def claim_operation(
    conn: Conn,
    *,
    order_id: str,
    kind: str,
    idempotency_key: str,
    amount: Decimal | None = None,
    reason: str | None = None,
    requested_by: str = "system",
    retry_of: str | None = None,
) -> asyncpg.Record:
    """The operation under `idempotency_key`: written now as `pending`, or as an earlier
    attempt left it (a retry finds its own row, whatever happened since)."""
    await conn.execute(
        """INSERT INTO payment_operations (order_id, kind, idempotency_key, amount, reason,
                                           requested_by, retry_of)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (idempotency_key) DO NOTHING""",
        order_id,
        kind,
        idempotency_key,
        amount,
        reason,
        requested_by,
        retry_of,
    )
    row = await operation(conn, idempotency_key)
    assert row is not None
    return row


async def operation(conn: Conn, idempotency_key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM payment_operations WHERE idempotency_key = $1", idempotency_key
    )


async def operation_by_psp_id(conn: Conn, psp_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM payment_operations WHERE psp_id = $1 ORDER BY id LIMIT 1", psp_id
    )


async def record_outcome(
    conn: asyncpg.Connection,
    idempotency_key: str,
    *,
    status: str,
    psp_id: str | None = None,
    amount: Decimal | None = None,
    failure_code: str | None = None,
) -> asyncpg.Record | None:
    """Set what the PSP answered. A known outcome is never turned back into `pending` (a
    retried call may read a refund as pending after its webhook settled it); returns the
    row as it stands."""
    return await conn.fetchrow(
        """UPDATE payment_operations
           SET status = CASE WHEN $2 = 'pending' AND status <> 'pending' THEN status ELSE $2 END,
               psp_id = COALESCE($3, psp_id),
               amount = COALESCE($4, amount),
               failure_code = CASE WHEN $2 = 'pending' AND status <> 'pending'
                                   THEN failure_code ELSE $5 END,
               updated_at = now()
           WHERE idempotency_key = $1
           RETURNING *""",
        idempotency_key,
        status,
        psp_id,
        amount,
        failure_code,
    )


async def settle_operation(
    conn: asyncpg.Connection, psp_id: str, *, status: str, failure_code: str | None = None
) -> asyncpg.Record | None:
    """The PSP's later word on a capture or refund (a webhook); None when no operation
    holds `psp_id`. Returns the row before the change as `previous_status` too."""
    return await conn.fetchrow(
        """UPDATE payment_operations o
           SET status = $2, failure_code = $3, updated_at = now()
           FROM (SELECT id, status AS previous_status FROM payment_operations
                 WHERE psp_id = $1 ORDER BY id LIMIT 1 FOR UPDATE) prev
           WHERE o.id = prev.id
           RETURNING o.*, prev.previous_status""",
        psp_id,
        status,
        failure_code,
    )


async def count_operations(conn: Conn, order_id: str, kind: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM payment_operations WHERE order_id = $1 AND kind = $2",
        order_id,
        kind,
    )
    return count


async def operations(conn: Conn, order_id: str) -> list[asyncpg.Record]:
    """The order's operations, oldest first."""
    return await conn.fetch(
        """SELECT id, kind, idempotency_key, psp_id, amount, reason, status, failure_code,
                  retry_of, requested_by, created_at, updated_at,
                  EXISTS (SELECT 1 FROM payment_operations r
                          WHERE r.retry_of = o.idempotency_key) AS retried
           FROM payment_operations o WHERE order_id = $1 ORDER BY id""",
        order_id,
    )


async def failed_refund(conn: Conn, order_id: str) -> asyncpg.Record | None:
    """The order's oldest failed refund not yet sent again, if any."""
    return await conn.fetchrow(
        """SELECT * FROM payment_operations o
           WHERE o.order_id = $1 AND o.kind = 'refund' AND o.status = 'failed'
             AND NOT EXISTS (SELECT 1 FROM payment_operations r
                             WHERE r.retry_of = o.idempotency_key)
           ORDER BY o.id LIMIT 1""",
        order_id,
    )


# ------------------------------------------------------------------ the ledger
async def ledger(conn: Conn, order_id: str) -> asyncpg.Record | None:
    """The order's money: checkout, captured, refunded (settled), refunding (pending at the
    PSP), voided, disputed, and whether its parcel was booked."""
    return await conn.fetchrow(_LEDGER + " WHERE p.order_id = $1", order_id)


async def ledgers(conn: Conn, transaction_ids: list[str]) -> list[asyncpg.Record]:
    """The money of every order the PSP may know: one authorised at checkout, one the shop
    has asked the PSP something about, or one paid by a transaction in `transaction_ids`
    (those the PSP lists)."""
    return await conn.fetch(
        _LEDGER
        + """ WHERE p.status = 'authorized'
                 OR EXISTS (SELECT 1 FROM payment_operations x WHERE x.order_id = p.order_id)
                 OR p.transaction_id = ANY($1::text[])
              ORDER BY p.order_id""",
        transaction_ids,
    )


# ------------------------------------------------------------------ webhook events
async def record_webhook_event(
    conn: asyncpg.Connection,
    *,
    event_id: str,
    type: str,
    transaction_id: str,
    object_id: str,
    amount: Decimal,
    occurred_at: datetime,
    order_id: str | None,
    outcome: str,
) -> bool:
    """Record a PSP event once; False when its id was recorded before (a replay)."""
    inserted = await conn.fetchval(
        """INSERT INTO psp_webhook_events (event_id, type, transaction_id, object_id, amount,
                                           occurred_at, order_id, outcome)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (event_id) DO NOTHING
           RETURNING event_id""",
        event_id,
        type,
        transaction_id,
        object_id,
        amount,
        occurred_at,
        order_id,
        outcome,
    )
    return inserted is not None


async def webhook_event(conn: Conn, event_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM psp_webhook_events WHERE event_id = $1", event_id)


async def webhook_events(conn: Conn, order_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT event_id, type, object_id, amount, outcome, occurred_at, received_at
           FROM psp_webhook_events WHERE order_id = $1 ORDER BY received_at, event_id""",
        order_id,
    )


# ------------------------------------------------------------------ disputes
async def open_dispute(
    conn: asyncpg.Connection,
    *,
    dispute_id: str,
    order_id: str,
    amount: Decimal,
    reason: str,
    opened_at: datetime,
) -> bool:
    """Record a chargeback once; False when it was recorded before."""
    inserted = await conn.fetchval(
        """INSERT INTO payment_disputes (dispute_id, order_id, amount, reason, opened_at)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (dispute_id) DO NOTHING
           RETURNING dispute_id""",
        dispute_id,
        order_id,
        amount,
        reason,
        opened_at,
    )
    return inserted is not None


async def disputes(conn: Conn, order_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT dispute_id, amount, reason, status, opened_at, closed_at
           FROM payment_disputes WHERE order_id = $1 ORDER BY opened_at, dispute_id""",
        order_id,
    )
