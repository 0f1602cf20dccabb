"""The shared view for departments: what waits on each one now, and stuck orders.

`GET /departments/{department}/queue` answers to that department's operator role
(`orderflow.process.DEPARTMENTS`) and to admin; `GET /orders/stuck` to any operator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel

from api.auth import Principal, require
from api.deps import order_client_of, pool_of, settings_of
from api.pagination import MAX_LIMIT, NEXT_CURSOR_HEADER, Page, encode_cursor, page_params
from api.stuck import StuckOrder, stuck_orders
from db.repositories import queues
from orderflow.process import DEPARTMENTS, Department, department
from orderflow.settings import Settings

router = APIRouter(tags=["shared view"])

# People who run the shop (not the storefront's machine token).
STAFF = ("reviewer", "warehouse", "purchasing", "logistics", "admin")


class QueueItem(BaseModel):
    kind: str
    ref: str
    order_id: str | None
    status: str
    waiting_since: datetime
    due_at: datetime
    waited_seconds: float
    sla_seconds: float
    # waited / SLA: above 1 the item is overdue
    sla_used: float
    overdue: bool
    details: dict[str, Any]


class DepartmentQueue(BaseModel):
    department: str
    name: str
    roles: list[str]
    as_of: datetime | None
    items: list[QueueItem]
    # Overdue items of the whole queue, not only of this page.
    overdue: int
    # Where the next page starts (also in the X-Next-Cursor header); None on the last page.
    next_cursor: str | None = None


class DepartmentSummary(BaseModel):
    department: str
    name: str
    roles: list[str]
    waiting: int
    overdue: int


def _roles(dep: Department) -> list[str]:
    return [dep.role, "admin"] if dep.role else ["admin"]


def _sources(
    dep: Department, settings: Settings
) -> list[tuple[str, Callable[[asyncpg.Pool], Awaitable[list[asyncpg.Record]]]]]:
    readers = queues.readers(settings, dep.code)
    return [(kind, readers[kind]) for kind in queues.kinds_of(dep.queues)]


async def department_queue(
    pool: asyncpg.Pool, settings: Settings, dep: Department
) -> DepartmentQueue:
    items: list[QueueItem] = []
    as_of = None
    for kind, read in _sources(dep, settings):
        for row in await read(pool):
            as_of = row["now"]
            waited = (row["now"] - row["waiting_since"]).total_seconds()
            sla = (row["due_at"] - row["waiting_since"]).total_seconds()
            items.append(
                QueueItem(
                    kind=kind,
                    ref=row["ref"],
                    order_id=row["order_id"],
                    status=row["status"],
                    waiting_since=row["waiting_since"],
                    due_at=row["due_at"],
                    waited_seconds=max(waited, 0.0),
                    sla_seconds=sla,
                    sla_used=waited / sla if sla > 0 else float(waited > 0),
                    overdue=row["now"] > row["due_at"],
                    details=row["details"],
                )
            )
    items.sort(key=lambda i: (i.waiting_since, i.kind, i.ref))
    return DepartmentQueue(
        department=dep.code,
        name=dep.name,
        roles=_roles(dep),
        as_of=as_of,
        items=items,
        overdue=sum(1 for i in items if i.overdue),
    )


def _known(code: str) -> Department:
    dep = department(code)
    if dep is None:
        known = ", ".join(d.code for d in DEPARTMENTS)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"unknown department {code!r}; known: {known}"
        )
    return dep


@router.get("/departments", response_model=list[DepartmentSummary])
async def list_departments(
    request: Request, _: Annotated[Principal, Depends(require(*STAFF))]
) -> list[DepartmentSummary]:
    """Every department with how much waits on it and how much of that is overdue."""
    pool, settings = pool_of(request), settings_of(request)
    result = []
    for dep in DEPARTMENTS:
        queue = await department_queue(pool, settings, dep)
        result.append(
            DepartmentSummary(
                department=dep.code,
                name=dep.name,
                roles=queue.roles,
                waiting=len(queue.items),
                overdue=queue.overdue,
            )
        )
    return result


@router.get("/departments/{department_code}/queue", response_model=DepartmentQueue)
async def get_department_queue(
    department_code: str,
    request: Request,
    who: Annotated[Principal, Depends(require(*STAFF))],
    response: Response,
    page: Annotated[Page, Depends(page_params)],
) -> DepartmentQueue:
    """What waits on the department now, oldest first, with its wait against the SLA; a
    page of items at a time (`limit`, `cursor`)."""
    dep = _known(department_code)
    if who.role not in _roles(dep):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role '{who.role}' may not see the {dep.code} queue; allowed: "
            + ", ".join(_roles(dep)),
        )
    after = page.after("time", "text", "text")
    queue = await department_queue(pool_of(request), settings_of(request), dep)
    # The queue mixes several sources, so it is paged here on its sort key.
    items = [i for i in queue.items if after is None or (i.waiting_since, i.kind, i.ref) > after]
    shown = items[: page.limit]
    if len(items) > page.limit:
        last = shown[-1]
        queue.next_cursor = encode_cursor([last.waiting_since, last.kind, last.ref])
        response.headers[NEXT_CURSOR_HEADER] = queue.next_cursor
    queue.items = shown
    return queue


@router.get("/orders/stuck", response_model=list[StuckOrder])
async def get_stuck_orders(
    request: Request,
    _: Annotated[Principal, Depends(require(*STAFF))],
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="The most overdue this many at most.")
    ] = 50,
) -> list[StuckOrder]:
    """Running orders that have stayed in one status longer than its SLA, most overdue
    first (SLAs per status: docs/process.md, "Stuck orders"), at most `limit`."""
    settings = settings_of(request)
    found = await stuck_orders(
        order_client_of(request).temporal,
        pool_of(request),
        policy=settings.order_policy,
        automatic=settings.stuck_automatic_after,
    )
    return found[:limit]
