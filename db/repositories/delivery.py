"""Parcels after they leave: what became of carrier events, follow-ups and lost parcels."""

from __future__ import annotations

import asyncpg


async def set_event_outcome(
    conn: asyncpg.Connection, carrier: str, event_id: str, outcome: str
) -> None:
    """Correct the recorded outcome of a received event (e.g. its order's process had ended)."""
    await conn.execute(
        "UPDATE tracking_events SET outcome = $3 WHERE carrier = $1 AND event_id = $2",
        carrier,
        event_id,
        outcome,
    )


async def carrier_known(conn: asyncpg.Connection | asyncpg.Pool, carrier: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM carriers WHERE code = $1", carrier))
