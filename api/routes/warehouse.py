"""The warehouse's endpoints: the pick list, and picked / packed reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from api.auth import Principal, require
from api.deps import order_client_of, order_status_or_404, pool_of, workflow_errors_as_http
from api.pagination import Page, page_params, paged
from db.repositories import warehouse
from orderflow.models import PackedReport, PickedReport

router = APIRouter(tags=["warehouse"])

# A parcel weighs its goods plus packaging; outside these bounds the scale or the report is wrong.
_MIN_FACTOR = 0.5
_MAX_FACTOR = 3.0
_MAX_PACKAGING_KG = 5.0


class WarehouseTask(BaseModel):
    order_id: str
    status: str
    opened_at: str
    due_at: str
    overdue: bool
    service_level: str
    lines: list[dict[str, Any]]


class PackedBody(BaseModel):
    weight_kg: float = Field(gt=0, le=1000)


class WarehouseReportResponse(BaseModel):
    order_id: str
    status: str


@router.get("/warehouse/tasks", response_model=list[WarehouseTask])
async def warehouse_tasks(
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require("warehouse", "admin"))],
    page: Annotated[Page, Depends(page_params)],
) -> list[WarehouseTask]:
    """Oldest first, a page at a time (`limit`, `cursor`; the next in `X-Next-Cursor`)."""
    found = await warehouse.open_tasks(
        pool_of(request), after=page.after("time", "text"), limit=page.limit + 1
    )
    return [
        WarehouseTask(
            order_id=r["order_id"],
            status=r["status"],
            opened_at=r["opened_at"].isoformat(),
            due_at=r["due_at"].isoformat(),
            overdue=r["overdue"],
            service_level=r["service_level"],
            lines=r["lines"],
        )
        for r in paged(found, page, request, response, lambda r: (r["opened_at"], r["order_id"]))
    ]


@router.post("/warehouse/tasks/{order_id}/picked", response_model=WarehouseReportResponse)
async def report_picked(
    order_id: str, request: Request, who: Annotated[Principal, Depends(require("warehouse"))]
) -> WarehouseReportResponse:
    await order_status_or_404(request, order_id)
    with workflow_errors_as_http(order_id):
        view = await order_client_of(request).report_picked(order_id, PickedReport(by=who.actor))
    return WarehouseReportResponse(order_id=order_id, status=view.status)


@router.post("/warehouse/tasks/{order_id}/packed", response_model=WarehouseReportResponse)
async def report_packed(
    order_id: str,
    body: PackedBody,
    request: Request,
    who: Annotated[Principal, Depends(require("warehouse"))],
) -> WarehouseReportResponse:
    pool = pool_of(request)
    await order_status_or_404(request, order_id)
    goods = await warehouse.goods_weight(pool, order_id)
    if (
        goods is not None
        and not goods * _MIN_FACTOR <= body.weight_kg <= goods * _MAX_FACTOR + _MAX_PACKAGING_KG
    ):
        raise HTTPException(
            422,
            f"weight {body.weight_kg} kg is implausible for goods of {goods:.3f} kg "
            f"(expected {goods * _MIN_FACTOR:.2f}–{goods * _MAX_FACTOR + _MAX_PACKAGING_KG:.2f} kg)",
        )
    with workflow_errors_as_http(order_id):
        view = await order_client_of(request).report_packed(
            order_id, PackedReport(weight_kg=body.weight_kg, by=who.actor)
        )
    return WarehouseReportResponse(order_id=order_id, status=view.status)
