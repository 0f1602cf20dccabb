"""Labelled outcomes of the risk review: what each scored order turned out to be.

Only explicit labels are stored (`risk_labels`: a person's fraud report or correction).
The rest are derived when read, so they can never disagree with their source: a reviewer's
approve or reject from `review_tasks`, a chargeback for fraud from `payment_disputes` (a
dispute the shop won says the order was legitimate), and an auto-approved order that nobody
reported within the settle time counts as legitimate. A review that timed out is an outcome
with no label: nobody looked, so it says nothing about fraud. The latest explicit label or
chargeback wins over a review decision, which wins over "settled".
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

_LABELS = """
WITH explicit AS (
    SELECT order_id, label, source, actor, at FROM risk_labels
    UNION ALL
    SELECT order_id, CASE WHEN status = 'won' THEN 'legit' ELSE 'fraud' END,
           'chargeback', 'psp', opened_at
    FROM payment_disputes WHERE reason = 'fraudulent'
), latest AS (
    SELECT DISTINCT ON (order_id) order_id, label, source, actor, at
    FROM explicit ORDER BY order_id, at DESC, source
)
SELECT o.order_id, o.placed_at, o.risk_score::float8 AS score, o.flagged,
       o.risk_model_version, o.risk_reasons, v.weights AS version_weights,
       CASE WHEN l.label IS NOT NULL THEN l.label
            WHEN t.status = 'approved' THEN 'legit'
            WHEN t.status = 'rejected' THEN 'fraud'
            WHEN t.order_id IS NULL AND NOT o.flagged AND o.placed_at <= $1::timestamptz - $2::interval
                THEN 'legit'
       END AS label,
       CASE WHEN l.label IS NOT NULL THEN l.source
            WHEN t.status IN ('approved', 'rejected') THEN 'review'
            WHEN t.status = 'expired' THEN 'review_timeout'
            WHEN t.order_id IS NULL AND NOT o.flagged AND o.placed_at <= $1::timestamptz - $2::interval
                THEN 'settled'
       END AS source,
       COALESCE(l.actor, t.decided_by) AS actor,
       COALESCE(l.at, t.decided_at) AS labelled_at
FROM orders o
LEFT JOIN latest l ON l.order_id = o.order_id
LEFT JOIN review_tasks t ON t.order_id = o.order_id
LEFT JOIN risk_model_versions v ON v.version = o.risk_model_version
"""


async def record(
    conn: asyncpg.Connection | asyncpg.Pool,
    order_id: str,
    *,
    label: str,
    source: str,
    actor: str,
    at: datetime,
    note: str | None = None,
) -> None:
    """An explicit label; the same order and source again replaces it (a person correcting
    their report)."""
    await conn.execute(
        """INSERT INTO risk_labels (order_id, label, source, actor, note, at)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (order_id, source) DO UPDATE
           SET label = EXCLUDED.label, actor = EXCLUDED.actor, note = EXCLUDED.note,
               at = EXCLUDED.at""",
        order_id,
        label,
        source,
        actor,
        note,
        at,
    )


async def label_of(
    conn: asyncpg.Connection | asyncpg.Pool,
    order_id: str,
    *,
    as_of: datetime,
    settle: timedelta,
) -> asyncpg.Record | None:
    """The order's outcome as of `as_of` (label None: no label yet, or a review timeout);
    None when the order is unknown."""
    return await conn.fetchrow(_LABELS + " WHERE o.order_id = $3", as_of, settle, order_id)


async def labelled(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    as_of: datetime,
    settle: timedelta,
    since: datetime,
) -> list[asyncpg.Record]:
    """Every scored order placed in [since, as_of] that has a label, oldest first."""
    return await conn.fetch(
        f"""SELECT * FROM ({_LABELS}
                WHERE o.risk_score IS NOT NULL AND o.placed_at >= $3::timestamptz AND o.placed_at <= $1::timestamptz
            ) AS outcomes
            WHERE label IS NOT NULL
            ORDER BY placed_at, order_id""",
        as_of,
        settle,
        since,
    )


async def fraud_placed_between(
    conn: asyncpg.Connection | asyncpg.Pool, start: datetime, end: datetime
) -> list[str]:
    """The orders placed in [start, end) known to be fraud so far."""
    rows = await conn.fetch(
        f"""SELECT order_id FROM ({_LABELS}
                WHERE o.placed_at >= $3::timestamptz AND o.placed_at < $1::timestamptz
            ) AS outcomes
            WHERE label = 'fraud'""",
        end,
        timedelta(0),
        start,
    )
    return [r["order_id"] for r in rows]
