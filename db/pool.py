"""The asyncpg connection pool every process shares, with JSON codecs registered."""

from __future__ import annotations

import json

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(database_url: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        database_url, min_size=min_size, max_size=max_size, init=_init_connection
    )
    assert pool is not None
    return pool


async def connect(database_url: str) -> asyncpg.Connection:
    """One connection with the same codecs as the pool's (for one-off jobs)."""
    conn = await asyncpg.connect(database_url)
    await _init_connection(conn)
    return conn
