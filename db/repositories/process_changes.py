"""Dated process changes (what, old → new, who, when, why), and the process settings each
start saw, so a start with different settings records what differs.

`record_configuration` is called once by every serving process at start (worker, API).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from orderflow.settings import Settings
from policies.process_changes import differences, process_settings

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

log = logging.getLogger(__name__)

_COLUMNS = """id, setting, steps, old_value, new_value, changed_by, changed_at, reason, source,
              recorded_at"""
# Serialises starts comparing with the last snapshot, so two processes starting together
# record a difference once.
_LOCK_KEY = 0x0F10_14C4
CONFIGURATION_REASON = "the settings at start differ from those of the previous start"


async def record_change(
    conn: Conn,
    *,
    setting: str,
    steps: list[int],
    old: Any,
    new: Any,
    by: str,
    reason: str,
    source: str,
    changed_at: datetime | None = None,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""INSERT INTO process_changes (setting, steps, old_value, new_value, changed_by,
                                         changed_at, reason, source)
            VALUES ($1, $2, $3, $4, $5, coalesce($6, now()), $7, $8)
            RETURNING {_COLUMNS}""",
        setting,
        steps,
        old,
        new,
        by,
        changed_at,
        reason,
        source,
    )
    assert row is not None
    return row


async def change(conn: Conn, change_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM process_changes WHERE id = $1", change_id)


async def list_changes(
    conn: Conn,
    *,
    step: int | None = None,
    setting: str | None = None,
    source: str | None = None,
    changed_from: datetime | None = None,
    changed_to: datetime | None = None,
    after: tuple[datetime, int] | None = None,
    limit: int | None = None,
) -> list[asyncpg.Record]:
    """Changes matching every given filter (`setting`: the name or a dotted prefix of it),
    oldest first; those after `after` (changed_at, id), at most `limit` (None: all)."""
    since, after_id = after or (None, None)
    return await conn.fetch(
        f"""SELECT {_COLUMNS} FROM process_changes
            WHERE ($1::smallint IS NULL OR $1 = ANY(steps))
              AND ($2::text IS NULL OR setting = $2 OR starts_with(setting, $2 || '.'))
              AND ($3::text IS NULL OR source = $3)
              AND ($4::timestamptz IS NULL OR changed_at >= $4)
              AND ($5::timestamptz IS NULL OR changed_at < $5)
              AND ($6::timestamptz IS NULL OR (changed_at, id) > ($6, $7::bigint))
            ORDER BY changed_at, id
            LIMIT $8""",
        step,
        setting,
        source,
        changed_from,
        changed_to,
        since,
        after_id,
        limit,
    )


async def last_changes_by_step(conn: Conn) -> dict[int, asyncpg.Record]:
    """The latest change touching each step."""
    rows = await conn.fetch(
        f"""SELECT DISTINCT ON (step) step, {_COLUMNS}
            FROM process_changes, unnest(steps) AS step
            ORDER BY step, changed_at DESC, id DESC"""
    )
    return {int(r["step"]): r for r in rows}


async def carrier_settings(conn: Conn) -> dict[str, dict[str, Any]]:
    """The carriers table as booking reads it, JSON-ready, by code."""
    rows = await conn.fetch(
        """SELECT code, name, max_weight_kg::text AS max_weight_kg,
                  on_time_rate::text AS on_time_rate, zones, rates, active
           FROM carriers ORDER BY code"""
    )
    return {r["code"]: json.loads(json.dumps({k: r[k] for k in r.keys() if k != "code"}))
            for r in rows}  # fmt: skip


async def record_configuration(
    conn: asyncpg.Connection, settings: Settings, *, by: str
) -> list[asyncpg.Record]:
    """Compare the process settings of this start with the last start's and record each
    difference as a change (unless an operator recorded that very change, with its reason,
    since); the first start only notes its settings. Returns the changes recorded now."""
    recorded: list[asyncpg.Record] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        current = process_settings(settings, await carrier_settings(conn))
        last = await conn.fetchrow(
            """SELECT settings, recorded_at FROM process_settings_snapshots
               ORDER BY id DESC LIMIT 1"""
        )
        if last is not None and last["settings"] == current:
            return []
        if last is not None:
            for diff in differences(last["settings"], current):
                if await _recorded_by_operator(conn, diff.setting, diff.new, last["recorded_at"]):
                    continue
                recorded.append(
                    await record_change(
                        conn,
                        setting=diff.setting,
                        steps=list(diff.steps),
                        old=diff.old,
                        new=diff.new,
                        by=f"configuration ({by})",
                        reason=CONFIGURATION_REASON,
                        source="configuration",
                    )
                )
        await conn.execute(
            "INSERT INTO process_settings_snapshots (settings, recorded_by) VALUES ($1, $2)",
            current,
            by,
        )
    for row in recorded:
        log.info(
            "process change recorded: %s %s -> %s",
            row["setting"],
            json.dumps(row["old_value"]),
            json.dumps(row["new_value"]),
        )
    return recorded


async def _recorded_by_operator(
    conn: asyncpg.Connection, setting: str, new: Any, since: datetime
) -> bool:
    found = await conn.fetchval(
        """SELECT 1 FROM process_changes
           WHERE setting = $1 AND source = 'operator' AND recorded_at >= $2
             AND new_value IS NOT DISTINCT FROM $3::jsonb""",
        setting,
        since,
        new,
    )
    return found is not None


async def latest_settings(conn: Conn) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await conn.fetchval(
        "SELECT settings FROM process_settings_snapshots ORDER BY id DESC LIMIT 1"
    )
    return found


async def record_configuration_at_start(pool: asyncpg.Pool, settings: Settings, *, by: str) -> None:
    """`record_configuration` for a starting process: a failure is logged, not raised, as the
    shop runs on without it and the next start compares again (the snapshot is unchanged)."""
    try:
        async with pool.acquire() as conn:
            await record_configuration(conn, settings, by=by)
    except (asyncpg.PostgresError, OSError):
        log.exception("could not compare the process settings with the previous start's")
