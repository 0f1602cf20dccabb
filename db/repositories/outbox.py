"""The notification outbox as a delivery queue: claim with a lease, mark sent or failed.

State machine of a row (`status`, see db/migrations/008_mail_outbox.sql):

    pending --claim--> sending --accepted (250)--> sent
                       sending --refused/error--> pending (backoff) | failed (attempt N)
                       sending --lease expired--> claimable again (its holder is gone)
    failed  --admin retry--> pending (attempts reset)

Every claim is an attempt and carries a fresh `lease_token`; the outcome of an attempt is
written only by the holder of that token (`mark_sent`, `mark_failed_attempt`, `release`),
so a dispatcher that comes back after its lease was taken over changes nothing.

`body_html` and `locale` belong to the content migration (009); they are read through
`to_jsonb(n)` so this module works on a schema with or without them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

STATUSES = ("pending", "sending", "sent", "failed")
# The longest error text kept on a row: enough for an SMTP reply, never a whole traceback.
ERROR_LIMIT = 1000

# What a dispatcher needs to send a row, and what an operator sees of it.
_ROW = """n.id, n.notification_key, n.order_id, n.kind, n.channel, n.recipient, n.subject,
          n.body, to_jsonb(n) ->> 'body_html' AS body_html, to_jsonb(n) ->> 'locale' AS locale,
          n.status, n.attempts, n.lease_until, n.lease_token, n.next_attempt_at,
          n.last_attempt_at, n.last_error, n.created_at, n.accepted_at, n.sent_at, n.failed_at"""


async def claim_due(
    conn: Conn, *, limit: int, lease_seconds: float, max_attempts: int
) -> list[asyncpg.Record]:
    """Claim up to `limit` due rows for this caller: pending rows whose backoff is over and
    sending rows whose lease has run out. Each becomes `sending` with a new lease token and
    one more attempt. SKIP LOCKED lets several dispatchers claim side by side, each row once.
    """
    return await conn.fetch(
        f"""WITH due AS MATERIALIZED (
                SELECT id FROM notifications
                WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()
                  AND (status = 'pending' OR attempts < $3)
                ORDER BY next_attempt_at, id
                LIMIT $1
                FOR UPDATE SKIP LOCKED)
            UPDATE notifications n
               SET status = 'sending',
                   attempts = n.attempts + 1,
                   lease_token = gen_random_uuid(),
                   lease_until = now() + make_interval(secs => $2),
                   next_attempt_at = now() + make_interval(secs => $2),
                   last_attempt_at = now()
              FROM due
             WHERE n.id = due.id
            RETURNING {_ROW}""",
        limit,
        lease_seconds,
        max_attempts,
    )


async def fail_abandoned(conn: Conn, *, max_attempts: int) -> list[int]:
    """Give up rows whose dispatcher lost them (lease expired) on their last attempt: a row
    that stops every dispatcher that takes it must not be claimed for ever."""
    rows = await conn.fetch(
        """UPDATE notifications
              SET status = 'failed', failed_at = now(), lease_until = NULL, lease_token = NULL,
                  last_error = left(coalesce(last_error || '; ', '')
                                    || 'the dispatcher sending it stopped (lease expired) on '
                                    || 'attempt ' || attempts, $2)
            WHERE status = 'sending' AND next_attempt_at <= now() AND attempts >= $1
            RETURNING id""",
        max_attempts,
        ERROR_LIMIT,
    )
    return [r["id"] for r in rows]


async def mark_sent(conn: Conn, row_id: int, lease_token: uuid.UUID) -> bool:
    """The SMTP server accepted the row's message. False if the claim is no longer the
    caller's (its lease was taken over, or an admin changed the row)."""
    updated = await conn.fetchval(
        """UPDATE notifications
              SET status = 'sent', accepted_at = now(), sent_at = now(), last_error = NULL,
                  lease_until = NULL, lease_token = NULL
            WHERE id = $1 AND lease_token = $2 AND status = 'sending'
            RETURNING id""",
        row_id,
        lease_token,
    )
    return updated is not None


async def mark_failed_attempt(
    conn: Conn,
    row_id: int,
    lease_token: uuid.UUID,
    error: str,
    *,
    max_attempts: int,
    backoff_seconds: float,
    backoff_max_seconds: float,
) -> asyncpg.Record | None:
    """Record a failed attempt: back to `pending` after `backoff * 2^(attempts-1)` seconds
    (at most `backoff_max`), or `failed` once `attempts` reached `max_attempts`.

    Returns the row's new status, attempts and next_attempt_at; None if the claim is no
    longer the caller's.
    """
    return await conn.fetchrow(
        """UPDATE notifications
              SET status = CASE WHEN attempts >= $4 THEN 'failed' ELSE 'pending' END,
                  failed_at = CASE WHEN attempts >= $4 THEN now() END,
                  next_attempt_at = CASE
                      WHEN attempts >= $4 THEN now()
                      -- The exponent is capped so that many attempts cannot overflow.
                      ELSE now() + make_interval(
                          secs => least($5 * power(2, least(attempts - 1, 60)), $6))
                  END,
                  last_error = left($3, $7), lease_until = NULL, lease_token = NULL
            WHERE id = $1 AND lease_token = $2 AND status = 'sending'
            RETURNING status, attempts, next_attempt_at""",
        row_id,
        lease_token,
        error,
        max_attempts,
        backoff_seconds,
        backoff_max_seconds,
        ERROR_LIMIT,
    )


async def release(conn: Conn, claims: list[tuple[int, uuid.UUID]]) -> int:
    """Hand claimed rows back untried (a dispatcher stopping, or short of lease time): they
    are due again at once and the claim does not count as an attempt."""
    if not claims:
        return 0
    result: str = await conn.execute(
        """UPDATE notifications n
              SET status = 'pending', attempts = greatest(n.attempts - 1, 0),
                  next_attempt_at = now(), lease_until = NULL, lease_token = NULL
             FROM unnest($1::bigint[], $2::uuid[]) AS c(id, token)
            WHERE n.id = c.id AND n.lease_token = c.token AND n.status = 'sending'""",
        [c[0] for c in claims],
        [c[1] for c in claims],
    )
    return int(result.rsplit(" ", 1)[-1])


async def retry(conn: Conn, row_id: int) -> asyncpg.Record | None:
    """An admin's retry of a `failed` row: pending again, due now, attempts from zero.
    None if the row is not `failed` (or does not exist: tell them apart with `get`)."""
    return await conn.fetchrow(
        f"""UPDATE notifications n
               SET status = 'pending', attempts = 0, next_attempt_at = now(), failed_at = NULL
             WHERE id = $1 AND status = 'failed'
            RETURNING {_ROW}""",
        row_id,
    )


async def get(conn: Conn, row_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_ROW} FROM notifications n WHERE n.id = $1", row_id)


async def list_rows(
    conn: Conn,
    *,
    status: str | None = None,
    recipient: str | None = None,
    order_id: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[asyncpg.Record]:
    """Outbox rows, newest first, filtered by status, recipient (any case) and order; only
    rows older than `before_id` when given (the next page)."""
    return await conn.fetch(
        f"""SELECT {_ROW} FROM notifications n
            WHERE ($1::text IS NULL OR n.status = $1)
              AND ($2::text IS NULL OR lower(n.recipient) = lower($2))
              AND ($3::text IS NULL OR n.order_id = $3)
              AND ($5::bigint IS NULL OR n.id < $5)
            ORDER BY n.id DESC
            LIMIT $4""",
        status,
        recipient,
        order_id,
        limit,
        before_id,
    )


async def counts(conn: Conn) -> dict[str, int]:
    """Rows per status (every status present, zero when none)."""
    rows = await conn.fetch("SELECT status, count(*) AS n FROM notifications GROUP BY status")
    found = {r["status"]: int(r["n"]) for r in rows}
    return {s: found.get(s, 0) for s in STATUSES}


async def oldest_unsent_age(conn: Conn) -> timedelta | None:
    """How long the oldest row not yet sent (pending or sending) has waited."""
    age: timedelta | None = await conn.fetchval(
        "SELECT now() - min(created_at) FROM notifications WHERE status IN ('pending', 'sending')"
    )
    return age


async def delivery_lag(
    conn: Conn, *, since: datetime, created_since: datetime | None = None
) -> asyncpg.Record:
    """Delivery lag (row created -> accepted by the SMTP server) of rows accepted since
    `since` (and created since `created_since`, when given): count, p50 and p95 in seconds
    (None when there are none)."""
    row = await conn.fetchrow(
        """SELECT count(*) AS n,
                  percentile_cont(0.5) WITHIN GROUP (
                      ORDER BY extract(epoch FROM accepted_at - created_at)) AS p50,
                  percentile_cont(0.95) WITHIN GROUP (
                      ORDER BY extract(epoch FROM accepted_at - created_at)) AS p95
           FROM notifications
           WHERE status = 'sent' AND accepted_at >= $1
             AND ($2::timestamptz IS NULL OR created_at >= $2)""",
        since,
        created_since,
    )
    assert row is not None
    return row


async def unsent_since(conn: Conn, since: datetime) -> int:
    """Rows created since `since` that are not sent yet (pending or sending)."""
    n: int = await conn.fetchval(
        """SELECT count(*) FROM notifications
           WHERE status IN ('pending', 'sending') AND created_at >= $1""",
        since,
    )
    return n
