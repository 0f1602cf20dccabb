"""The weekly process review's reads (SLA breaches, process issues of a week) and the
stored review packs."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def sla_breaches(
    conn: Conn, start: datetime, end: datetime, purchase_request_sla: timedelta
) -> dict[int, int]:
    """Per step, the week's work that waited past its service level: review tasks decided
    (or still waiting) after their SLA (step 3), purchase requests of the week open past
    theirs (4), pick tasks picked late (5), parcels of the week's orders delivered late or
    overdue (6), escalated delivery follow-ups (7)."""
    row = await conn.fetchrow(
        """SELECT
             (SELECT count(*) FROM review_tasks t
              WHERE t.opened_at >= $1 AND t.opened_at < $2 AND t.status <> 'cancelled'
                AND coalesce(t.decided_at, now()) > t.due_at) AS review,
             (SELECT count(*) FROM purchase_requests r
              WHERE r.created_at >= $1 AND r.created_at < $2 AND r.status = 'open'
                AND now() > r.created_at + $3::interval) AS purchasing,
             (SELECT count(*) FROM warehouse_tasks w
              WHERE w.opened_at >= $1 AND w.opened_at < $2 AND w.status <> 'cancelled'
                AND coalesce(w.picked_at, now()) > w.due_at) AS picking,
             (SELECT count(*) FROM shipments s JOIN orders o ON o.order_id = s.order_id
              WHERE o.placed_at >= $1 AND o.placed_at < $2
                AND coalesce(s.delivered_at, now()) > s.expected_delivery) AS delivery,
             (SELECT count(*) FROM follow_ups f
              WHERE f.opened_at >= $1 AND f.opened_at < $2 AND f.escalated) AS tracking""",
        start,
        end,
        purchase_request_sla,
    )
    assert row is not None
    return {
        3: row["review"],
        4: row["purchasing"],
        5: row["picking"],
        6: row["delivery"],
        7: row["tracking"],
    }


async def issues_of_week(conn: Conn, start: datetime, end: datetime) -> list[asyncpg.Record]:
    """Process issues raised or resolved in [start, end)."""
    return await conn.fetch(
        """SELECT ticket_id, step, department, order_id, severity, status, description,
                  raised_by, raised_at, resolved_at, resolution
           FROM process_issues
           WHERE (raised_at >= $1 AND raised_at < $2) OR (resolved_at >= $1 AND resolved_at < $2)
           ORDER BY raised_at, ticket_id""",
        start,
        end,
    )


async def open_issues_at(conn: Conn, at: datetime) -> dict[int, int]:
    """Per step, the process issues raised before `at` and not resolved by then."""
    rows = await conn.fetch(
        """SELECT step, count(*) AS n FROM process_issues
           WHERE raised_at < $1 AND (resolved_at IS NULL OR resolved_at >= $1)
           GROUP BY step""",
        at,
    )
    return {int(r["step"]): int(r["n"]) for r in rows}


async def store_pack(
    conn: Conn, start: datetime, end: datetime, pack: dict[str, Any], html: str
) -> datetime:
    """Store (or replace) the week's pack; when it was built."""
    built_at: datetime = await conn.fetchval(
        """INSERT INTO process_review_packs (week_start, week_end, pack, html)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (week_start)
           DO UPDATE SET week_end = EXCLUDED.week_end, pack = EXCLUDED.pack,
                         html = EXCLUDED.html, built_at = now()
           RETURNING built_at""",
        start,
        end,
        pack,
        html,
    )
    return built_at


async def pack_of(conn: Conn, week: date) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT week_start, week_end, pack, html, built_at FROM process_review_packs
           WHERE week_start = ($1::date)::timestamp AT TIME ZONE 'UTC'""",
        week,
    )


async def packs(
    conn: Conn, *, before: datetime | None = None, limit: int | None = None
) -> list[asyncpg.Record]:
    """Stored packs, latest week first: those before `before`, at most `limit`."""
    return await conn.fetch(
        """SELECT week_start, week_end, built_at FROM process_review_packs
           WHERE ($1::timestamptz IS NULL OR week_start < $1)
           ORDER BY week_start DESC LIMIT $2""",
        before,
        limit,
    )
