"""Versions of the risk operating point (threshold and weights), one of them active."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

_COLUMNS = "version, calibration_key, threshold, weights, metrics, created_at, active, activated_at"


async def active(conn: asyncpg.Connection | asyncpg.Pool) -> asyncpg.Record | None:
    """The version the risk review scores with now, or None before the first one."""
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM risk_model_versions WHERE active")


async def insert_version(
    conn: asyncpg.Connection,
    *,
    calibration_key: str,
    threshold: float,
    weights: dict[str, float],
    metrics: dict[str, Any],
    created_at: datetime,
) -> asyncpg.Record:
    """A new (inactive) version; the same `calibration_key` again returns the first row."""
    row = await conn.fetchrow(
        f"""INSERT INTO risk_model_versions (calibration_key, threshold, weights, metrics,
                                            created_at)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (calibration_key) DO NOTHING
            RETURNING {_COLUMNS}""",
        calibration_key,
        threshold,
        weights,
        metrics,
        created_at,
    )
    if row is None:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM risk_model_versions WHERE calibration_key = $1",
            calibration_key,
        )
    assert row is not None
    return row


async def activate(conn: asyncpg.Connection, version: int, *, at: datetime) -> None:
    """Make `version` the active one (the one before it steps down in the same transaction)."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE risk_model_versions SET active = false WHERE active AND version <> $1",
            version,
        )
        await conn.execute(
            """UPDATE risk_model_versions SET active = true, activated_at = $2
               WHERE version = $1 AND NOT active""",
            version,
            at,
        )


async def versions(
    conn: asyncpg.Connection | asyncpg.Pool, limit: int = 50
) -> list[asyncpg.Record]:
    """The latest versions, newest first."""
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM risk_model_versions ORDER BY version DESC LIMIT $1", limit
    )


async def record_scored_by(conn: asyncpg.Connection, order_id: str, version: int | None) -> None:
    """Remember which version scored the order (None: the configured threshold)."""
    await conn.execute(
        "UPDATE orders SET risk_model_version = $2 WHERE order_id = $1", order_id, version
    )
