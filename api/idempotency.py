"""`Idempotency-Key` on requests that change state: required, bound to the body it first
came with (PostgreSQL, `db/repositories/idempotency.py`), answered the same when repeated."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import HTTPException, status

from db.repositories import idempotency

HEADER = "Idempotency-Key"


def required_key(header: str | None, *, alternative: str | None = None) -> str:
    """The request's key: the header, or `alternative` (a key the body may carry instead).
    Without either, 422: a client that retries must be able to say it is retrying."""
    if header is not None and alternative is not None and header != alternative:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"the {HEADER} header and the body's request_key differ; send one key",
        )
    key = header if header is not None else alternative
    if key is None or not key.strip():
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"missing {HEADER} header: send a key unique to this request (e.g. a UUID) and "
            "the same key again when retrying it",
        )
    return key


async def first_answer(
    pool: asyncpg.Pool, scope: str, key: str, body: Any
) -> idempotency.Remembered | None:
    """The stored answer of a repeated key with the same body, None to carry the request
    out; 409 when the key came with another body before."""
    try:
        return await idempotency.bind(pool, scope, key, idempotency.request_hash(body))
    except idempotency.KeyReused:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{HEADER} {key!r} was used before with a different request body; "
            "use a new key for a new request",
        ) from None


async def remember(
    pool: asyncpg.Pool, scope: str, key: str, *, status_code: int, response: dict[str, Any]
) -> None:
    await idempotency.remember(pool, scope, key, status_code=status_code, response=response)
