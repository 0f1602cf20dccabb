"""Liveness of the API and of what it depends on."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import order_client_of, pool_of

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {"api": "ok"}
    try:
        await asyncio.wait_for(pool_of(request).fetchval("SELECT 1"), timeout=2)
        checks["postgres"] = "ok"
    except Exception as exc:  # any failure means "not healthy", reported, never a 500
        checks["postgres"] = f"error: {type(exc).__name__}"
    try:
        ok = await asyncio.wait_for(
            order_client_of(request).temporal.service_client.check_health(), timeout=2
        )
        checks["temporal"] = "ok" if ok else "error: unhealthy"
    except Exception as exc:
        checks["temporal"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        status_code=200 if healthy else 503,
        content={"status": "ok" if healthy else "degraded", **checks},
    )
