"""Webhook subscriptions and their deliveries (db/migrations/015_webhooks.sql).

Deliveries are queued by a trigger in the transaction of each order event; dispatchers claim
them with a lease, like the mail outbox (db/repositories/outbox.py): every claim is an
attempt with a fresh `lease_token`, and only the holder of that token records the outcome,
so a dispatcher that comes back after its lease was taken over changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

STATUSES = ("pending", "sending", "delivered", "dead")
# The longest error text kept: enough for a reason, never a whole response body.
ERROR_LIMIT = 500

_SUBSCRIPTION = "s.id, s.url, s.secret_hint, s.events, s.created_at, s.deleted_at"
_DELIVERY = """d.id, d.subscription_id, d.event_id, d.order_id, d.event_type, d.status,
               d.attempts, d.next_attempt_at, d.age_from, d.last_attempt_at,
               d.last_status_code, d.last_error, d.created_at, d.delivered_at, d.dead_at"""


# ---------------------------------------------------------------- subscriptions
async def create_subscription(
    conn: Conn, *, url: str, secret_sealed: bytes, secret_hint: str, events: list[str]
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""INSERT INTO webhook_subscriptions AS s (url, secret_sealed, secret_hint, events)
            VALUES ($1, $2, $3, $4) RETURNING {_SUBSCRIPTION}""",
        url,
        secret_sealed,
        secret_hint,
        events,
    )
    assert row is not None
    return row


async def list_subscriptions(conn: Conn) -> list[asyncpg.Record]:
    """Live subscriptions, oldest first, each with its deliveries per status."""
    return await conn.fetch(
        f"""SELECT {_SUBSCRIPTION},
                   coalesce(c.counts, '{{}}'::jsonb) AS counts
            FROM webhook_subscriptions s
            LEFT JOIN LATERAL (
                SELECT jsonb_object_agg(status, n) AS counts
                FROM (SELECT status, count(*) AS n FROM webhook_deliveries
                      WHERE subscription_id = s.id GROUP BY status) per_status) c ON true
            WHERE s.deleted_at IS NULL
            ORDER BY s.id"""
    )


async def get_subscription(conn: Conn, subscription_id: int) -> asyncpg.Record | None:
    """A subscription, deleted or not."""
    return await conn.fetchrow(
        f"SELECT {_SUBSCRIPTION} FROM webhook_subscriptions s WHERE s.id = $1", subscription_id
    )


async def delete_subscription(conn: Conn, subscription_id: int) -> bool:
    """Stop a subscription: nothing more is queued or sent for it; its deliveries stay
    readable. False when there is no live subscription of that id."""
    deleted = await conn.fetchval(
        """UPDATE webhook_subscriptions SET deleted_at = now()
            WHERE id = $1 AND deleted_at IS NULL RETURNING id""",
        subscription_id,
    )
    return deleted is not None


# ---------------------------------------------------------------- dispatching
async def claim_due(
    conn: Conn, *, limit: int, lease_seconds: float, busy: Mapping[int, int] | None = None
) -> list[asyncpg.Record]:
    """Claim up to `limit` due deliveries of live subscriptions: pending ones whose backoff
    is over and sending ones whose lease ran out, each only if no earlier event of its order
    is still undelivered for its subscription. Each becomes `sending` with a new lease token
    and one more attempt; SKIP LOCKED lets dispatchers claim side by side, each row once.

    First attempts go before retries, and subscriptions take turns: each one's earliest due
    delivery comes before any one's second, counting what the caller has on the wire for
    each already (`busy`). So a subscriber with a backlog of retries (one that is down) gets
    what the rounds leave over, and cannot hold back the deliveries of one that answers.

    Returns what sending needs: the subscription's URL and sealed secret, the event, the
    order's status as of the event, and `db_now` (the claim's time on the database clock).
    """
    return await conn.fetch(
        f"""WITH busy AS (
                SELECT * FROM unnest($3::bigint[], $4::int[]) AS b (subscription_id, n)),
            ready AS (
                SELECT d.id, d.next_attempt_at, d.attempts > 0 AS retry,
                       row_number() OVER (PARTITION BY d.subscription_id
                                          ORDER BY d.next_attempt_at, d.id)
                       + coalesce((SELECT b.n FROM busy b
                                   WHERE b.subscription_id = d.subscription_id), 0) AS turn
                  FROM webhook_deliveries d
                  JOIN webhook_subscriptions s ON s.id = d.subscription_id
                 WHERE d.status IN ('pending', 'sending') AND d.next_attempt_at <= now()
                   AND s.deleted_at IS NULL
                   AND NOT EXISTS (
                       SELECT 1 FROM webhook_deliveries e
                       WHERE e.subscription_id = d.subscription_id AND e.order_id = d.order_id
                         AND e.event_id < d.event_id AND e.status IN ('pending', 'sending'))),
            due AS MATERIALIZED (
                -- Locked apart from the ranking (no row lock beside a window function);
                -- the lock re-checks that each row is still due.
                SELECT d.id FROM webhook_deliveries d
                 WHERE d.id IN (SELECT id FROM ready
                                 ORDER BY retry, turn, next_attempt_at, id LIMIT $1)
                   AND d.status IN ('pending', 'sending') AND d.next_attempt_at <= now()
                FOR UPDATE OF d SKIP LOCKED)
            UPDATE webhook_deliveries d
               SET status = 'sending',
                   attempts = d.attempts + 1,
                   lease_token = gen_random_uuid(),
                   lease_until = now() + make_interval(secs => $2),
                   next_attempt_at = now() + make_interval(secs => $2),
                   last_attempt_at = now()
              FROM due, webhook_subscriptions s, order_events ev
             WHERE d.id = due.id AND s.id = d.subscription_id AND ev.id = d.event_id
            RETURNING {_DELIVERY}, d.lease_token, s.url, s.secret_sealed,
                      ev.details, ev.occurred_at, now() AS db_now,
                      (SELECT x.status FROM order_events x
                        WHERE x.order_id = ev.order_id AND x.id <= ev.id
                          AND x.status IS NOT NULL
                        ORDER BY x.id DESC LIMIT 1) AS order_status""",
        limit,
        lease_seconds,
        list((busy or {}).keys()),
        list((busy or {}).values()),
    )


async def dead_letter_expired(conn: Conn, *, max_age: timedelta) -> list[asyncpg.Record]:
    """Give up deliveries older than `max_age` that are not on the wire: pending ones (e.g.
    waiting behind an earlier event of their order) and sending ones whose lease ran out."""
    return await conn.fetch(
        """UPDATE webhook_deliveries
              SET status = 'dead', dead_at = now(), lease_until = NULL, lease_token = NULL,
                  last_error = left(coalesce(last_error || '; ', '')
                                    || 'not delivered within the max age', $2)
            WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()
              AND age_from + $1::interval <= now()
            RETURNING id, subscription_id, order_id, event_id""",
        max_age,
        ERROR_LIMIT,
    )


async def mark_delivered(
    conn: Conn, delivery_id: int, lease_token: uuid.UUID, *, status_code: int, latency_ms: int
) -> bool:
    """The receiver answered 2xx; the attempt is logged. False if the claim is no longer the
    caller's (its lease was taken over, or an admin changed the row)."""
    done = await conn.fetchval(
        """WITH upd AS (
               UPDATE webhook_deliveries
                  SET status = 'delivered', delivered_at = now(), last_status_code = $3,
                      last_error = NULL, lease_until = NULL, lease_token = NULL
                WHERE id = $1 AND lease_token = $2 AND status = 'sending'
                RETURNING id, subscription_id, order_id, event_id),
           logged AS (
               INSERT INTO webhook_attempts (delivery_id, subscription_id, status_code,
                                             latency_ms)
               SELECT id, subscription_id, $3, $4 FROM upd),
           -- The order's next events were held back while this one failed: due now.
           woken AS (
               UPDATE webhook_deliveries f SET next_attempt_at = now()
                 FROM upd
                WHERE f.subscription_id = upd.subscription_id AND f.order_id = upd.order_id
                  AND f.event_id > upd.event_id AND f.status = 'pending'
                  AND f.next_attempt_at > now())
           SELECT id FROM upd""",
        delivery_id,
        lease_token,
        status_code,
        latency_ms,
    )
    return done is not None


async def mark_failed(
    conn: Conn,
    delivery_id: int,
    lease_token: uuid.UUID,
    *,
    status_code: int | None,
    error: str,
    latency_ms: int,
    next_attempt_at: datetime | None,
) -> asyncpg.Record | None:
    """Record a failed attempt: pending again at `next_attempt_at`, or dead when it is None.
    Returns the new status, attempts and next_attempt_at; None if the claim is no longer
    the caller's."""
    return await conn.fetchrow(
        """WITH upd AS (
               UPDATE webhook_deliveries
                  SET status = CASE WHEN $6::timestamptz IS NULL THEN 'dead' ELSE 'pending' END,
                      dead_at = CASE WHEN $6::timestamptz IS NULL THEN now() END,
                      next_attempt_at = coalesce($6::timestamptz, now()),
                      last_status_code = $3, last_error = left($4, $7),
                      lease_until = NULL, lease_token = NULL
                WHERE id = $1 AND lease_token = $2 AND status = 'sending'
                RETURNING id, subscription_id, order_id, event_id, status, attempts,
                          next_attempt_at),
           logged AS (
               INSERT INTO webhook_attempts (delivery_id, subscription_id, status_code,
                                             latency_ms, error)
               SELECT id, subscription_id, $3, $5, left($4, $7) FROM upd),
           -- The order's later events cannot go before this one: not due before it, so a
           -- subscriber that is down leaves no growing backlog for the claims to scan.
           held AS (
               UPDATE webhook_deliveries f
                  SET next_attempt_at = greatest(f.next_attempt_at, $6::timestamptz)
                 FROM upd
                WHERE $6::timestamptz IS NOT NULL
                  AND f.subscription_id = upd.subscription_id AND f.order_id = upd.order_id
                  AND f.event_id > upd.event_id AND f.status = 'pending')
           SELECT status, attempts, next_attempt_at FROM upd""",
        delivery_id,
        lease_token,
        status_code,
        error,
        latency_ms,
        next_attempt_at,
        ERROR_LIMIT,
    )


async def release(conn: Conn, claims: list[tuple[int, uuid.UUID]]) -> int:
    """Hand claimed deliveries back untried (a dispatcher stopping): due again at once, and
    the claim does not count as an attempt."""
    if not claims:
        return 0
    result: str = await conn.execute(
        """UPDATE webhook_deliveries d
              SET status = 'pending', attempts = greatest(d.attempts - 1, 0),
                  next_attempt_at = now(), lease_until = NULL, lease_token = NULL
             FROM unnest($1::bigint[], $2::uuid[]) AS c(id, token)
            WHERE d.id = c.id AND d.lease_token = c.token AND d.status = 'sending'""",
        [c[0] for c in claims],
        [c[1] for c in claims],
    )
    return int(result.rsplit(" ", 1)[-1])


# ---------------------------------------------------------------- operators
async def retry(conn: Conn, delivery_id: int) -> asyncpg.Record | None:
    """An admin's retry of a `dead` delivery of a live subscription: pending and due now,
    its max age counted afresh. None when it is not such a delivery."""
    return await conn.fetchrow(
        f"""UPDATE webhook_deliveries d
               SET status = 'pending', next_attempt_at = now(), age_from = now(),
                   dead_at = NULL
              FROM webhook_subscriptions s
             WHERE d.id = $1 AND d.status = 'dead'
               AND s.id = d.subscription_id AND s.deleted_at IS NULL
            RETURNING {_DELIVERY}""",
        delivery_id,
    )


async def get_delivery(conn: Conn, delivery_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_DELIVERY} FROM webhook_deliveries d WHERE d.id = $1", delivery_id
    )


async def list_deliveries(
    conn: Conn,
    subscription_id: int,
    *,
    status: str | None = None,
    order_id: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[asyncpg.Record]:
    """A subscription's deliveries, newest first, filtered by status and order; only those
    older than `before_id` when given (the next page)."""
    return await conn.fetch(
        f"""SELECT {_DELIVERY} FROM webhook_deliveries d
            WHERE d.subscription_id = $1
              AND ($2::text IS NULL OR d.status = $2)
              AND ($3::text IS NULL OR d.order_id = $3)
              AND ($5::bigint IS NULL OR d.id < $5)
            ORDER BY d.id DESC
            LIMIT $4""",
        subscription_id,
        status,
        order_id,
        limit,
        before_id,
    )


async def attempts_of(conn: Conn, delivery_id: int) -> list[asyncpg.Record]:
    """Every attempt of a delivery, oldest first: when, the answer's status, latency, error."""
    return await conn.fetch(
        """SELECT attempted_at, status_code, latency_ms, error
           FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id""",
        delivery_id,
    )
