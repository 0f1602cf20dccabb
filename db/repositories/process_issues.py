"""Process issues: difficulties staff meet while working a step, owned by a department,
open → in_progress → resolved with a note."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

_COLUMNS = """ticket_id, step, department, order_id, description, severity, status, raised_by,
              raised_at, started_at, started_by, resolved_at, resolved_by, resolution"""


async def raise_issue(
    conn: Conn,
    *,
    ticket_id: str,
    step: int,
    department: str,
    order_id: str | None,
    description: str,
    severity: str,
    raised_by: str,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""INSERT INTO process_issues (ticket_id, step, department, order_id, description,
                                        severity, raised_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING {_COLUMNS}""",
        ticket_id,
        step,
        department,
        order_id,
        description,
        severity,
        raised_by,
    )
    assert row is not None
    return row


async def issue(conn: Conn, ticket_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM process_issues WHERE ticket_id = $1", ticket_id
    )


async def start_issue(conn: Conn, ticket_id: str, *, by: str) -> asyncpg.Record | None:
    """Mark an open issue in progress; None when it is not open (nothing changes)."""
    return await conn.fetchrow(
        f"""UPDATE process_issues SET status = 'in_progress', started_at = now(), started_by = $2
            WHERE ticket_id = $1 AND status = 'open'
            RETURNING {_COLUMNS}""",
        ticket_id,
        by,
    )


async def resolve_issue(
    conn: Conn, ticket_id: str, *, by: str, resolution: str
) -> asyncpg.Record | None:
    """Resolve an issue not yet resolved; None when it was resolved before."""
    return await conn.fetchrow(
        f"""UPDATE process_issues SET status = 'resolved', resolved_at = now(), resolved_by = $2,
                   resolution = $3
            WHERE ticket_id = $1 AND status <> 'resolved'
            RETURNING {_COLUMNS}""",
        ticket_id,
        by,
        resolution,
    )


async def list_issues(
    conn: Conn,
    *,
    status: str | None = None,
    department: str | None = None,
    step: int | None = None,
    severity: str | None = None,
    order_id: str | None = None,
    raised_from: datetime | None = None,
    raised_to: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[asyncpg.Record]:
    """Issues matching every given filter, oldest first; those after `after` (raised_at,
    ticket_id), at most `limit` (None: all)."""
    since, after_id = after or (None, None)
    return await conn.fetch(
        f"""SELECT {_COLUMNS} FROM process_issues
            WHERE ($1::text IS NULL OR status = $1)
              AND ($2::text IS NULL OR department = $2)
              AND ($3::smallint IS NULL OR step = $3)
              AND ($4::text IS NULL OR severity = $4)
              AND ($5::text IS NULL OR order_id = $5)
              AND ($6::timestamptz IS NULL OR raised_at >= $6)
              AND ($7::timestamptz IS NULL OR raised_at < $7)
              AND ($8::timestamptz IS NULL OR (raised_at, ticket_id) > ($8, $9::text))
            ORDER BY raised_at, ticket_id
            LIMIT $10""",
        status,
        department,
        step,
        severity,
        order_id,
        raised_from,
        raised_to,
        since,
        after_id,
        limit,
    )


async def waiting_on(
    conn: Conn, department: str, slas: dict[str, timedelta]
) -> list[asyncpg.Record]:
    """The department's issues not yet resolved, as queue items (db/repositories/queues.py's
    columns), each due after its severity's SLA."""
    return await conn.fetch(
        """SELECT i.ticket_id AS ref, i.order_id, i.status, i.raised_at AS waiting_since,
                  i.raised_at + CASE i.severity WHEN 'high' THEN $2::interval
                                                WHEN 'medium' THEN $3::interval
                                                ELSE $4::interval END AS due_at,
                  now() AS now,
                  jsonb_build_object('step', i.step, 'severity', i.severity,
                                     'description', left(i.description, 300),
                                     'raised_by', i.raised_by) AS details
           FROM process_issues i
           WHERE i.department = $1 AND i.status <> 'resolved'
           ORDER BY i.raised_at, i.ticket_id""",
        department,
        slas["high"],
        slas["medium"],
        slas["low"],
    )


async def counts_by_step(conn: Conn) -> dict[int, int]:
    """Issues not yet resolved, per step."""
    rows = await conn.fetch(
        """SELECT step, count(*) AS n FROM process_issues WHERE status <> 'resolved'
           GROUP BY step"""
    )
    return {int(r["step"]): int(r["n"]) for r in rows}
