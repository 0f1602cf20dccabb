"""Idempotency keys of API requests: each key is bound to a hash of the body it first came
with, and keeps the first answer once there is one."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg


class KeyReused(Exception):
    """The key was used before with a different body."""


@dataclass(frozen=True)
class Remembered:
    status_code: int
    response: dict[str, Any]


def request_hash(body: Any) -> str:
    """A stable hash of a JSON-able body: the same fields in any order hash the same."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def bind(
    conn: asyncpg.Connection | asyncpg.Pool, scope: str, key: str, hashed: str
) -> Remembered | None:
    """Bind `key` to the body's hash (first use) or check it (later uses).

    Returns the first answer when one was stored, None when the caller should carry out the
    request (first use, or a first attempt that ended before it stored its answer: the
    request itself is keyed, so doing it again changes nothing). Raises `KeyReused` when the
    key came with another body before."""
    await conn.execute(
        """INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3)
           ON CONFLICT (scope, key) DO NOTHING""",
        scope,
        key,
        hashed,
    )
    row = await conn.fetchrow(
        """SELECT request_hash, status_code, response FROM idempotency_keys
           WHERE scope = $1 AND key = $2""",
        scope,
        key,
    )
    assert row is not None  # inserted above or before; never deleted
    if row["request_hash"] != hashed:
        raise KeyReused(key)
    if row["response"] is None:
        return None
    return Remembered(row["status_code"], dict(row["response"]))


async def remember(
    conn: asyncpg.Connection | asyncpg.Pool,
    scope: str,
    key: str,
    *,
    status_code: int,
    response: dict[str, Any],
) -> None:
    """Store the first answer of the key (JSON-able, e.g. `model_dump(mode="json")`); a
    later one never replaces it."""
    await conn.execute(
        """UPDATE idempotency_keys SET status_code = $3, response = $4
           WHERE scope = $1 AND key = $2 AND response IS NULL""",
        scope,
        key,
        status_code,
        response,
    )
