"""What route handlers share: the pool, the storefront client, and Temporal error mapping."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg
from fastapi import HTTPException, Request, status
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from orderflow.models import OrderStatus
from orderflow.settings import Settings
from starter.order_client import OrderClient


def pool_of(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def order_client_of(request: Request) -> OrderClient:
    client: OrderClient = request.app.state.storefront
    return client


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def order_status_or_404(request: Request, order_id: str) -> str:
    """The order's status in PostgreSQL; RECEIVED for an order placed a moment ago that no
    worker has recorded yet (its workflow knows it); 404 for an order never placed."""
    current = await pool_of(request).fetchval(
        "SELECT status FROM orders WHERE order_id = $1", order_id
    )
    if current is not None:
        return str(current)
    if await order_client_of(request).placed_input(order_id) is not None:
        return str(OrderStatus.RECEIVED)
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {order_id} not found")


@contextlib.contextmanager
def workflow_errors_as_http(order_id: str) -> Iterator[None]:
    """Refused updates are 409s with the workflow's reason; a finished order is a 409 too."""
    try:
        yield
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type in ("WrongState", "InvalidInput"):
            code = status.HTTP_409_CONFLICT if cause.type == "WrongState" else 422
            raise HTTPException(code, cause.message) from exc
        raise HTTPException(status.HTTP_409_CONFLICT, str(cause or exc)) from exc
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            # The status read before the call may be stale by now: say only what is sure.
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"order {order_id} awaits nothing any more: its process has ended",
            ) from exc
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "order service busy, retry"
            ) from exc
        raise
