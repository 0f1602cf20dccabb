"""Sends what the notification outbox holds: e-mails and department notices.

Rows are claimed and marked sent in one statement (SKIP LOCKED), so several workers can
dispatch side by side and no notification goes out twice. Sending is a log line here; a
real mail or chat gateway plugs in at `deliver`.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from db.repositories import notifications

log = logging.getLogger("orderflow.outbox")


async def deliver(row: asyncpg.Record) -> None:
    log.info("%s to %s: %s", row["channel"], row["recipient"], row["subject"])


async def dispatch_once(pool: asyncpg.Pool, batch: int = 200) -> int:
    async with pool.acquire() as conn, conn.transaction():
        rows = await notifications.claim_unsent(conn, batch)
    for row in rows:
        await deliver(row)
    return len(rows)


async def run_dispatcher(pool: asyncpg.Pool, interval_seconds: float) -> None:
    while True:
        try:
            while await dispatch_once(pool):
                pass
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("outbox dispatch paused: %s", exc)
        await asyncio.sleep(interval_seconds)
