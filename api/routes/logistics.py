"""Logistics' endpoints: parcels no carrier would take, and parcels lost on the way."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from api.auth import Principal, require
from api.deps import order_client_of, order_status_or_404, pool_of, workflow_errors_as_http
from api.pagination import Page, page_params, paged
from db.repositories import delivery
from orderflow.models.messages import LostParcelOutcome, LostParcelResolution, RebookRequest

router = APIRouter(tags=["logistics"])


class ResolutionBody(BaseModel):
    action: Literal["reship", "refund"]
    note: str | None = Field(default=None, max_length=2000)


class RebookBody(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


class RebookResponse(BaseModel):
    order_id: str
    status: str
    awaiting: str | None
    tracking_number: str | None


class LostParcel(BaseModel):
    order_id: str
    case_no: int
    carrier: str
    tracking_number: str
    reason: str
    opened_at: datetime
    customer_email: str
    lines: list[dict[str, Any]]


@router.get("/logistics/lost-parcels", response_model=list[LostParcel])
async def lost_parcels(
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require("logistics", "admin"))],
    page: Annotated[Page, Depends(page_params)],
) -> list[LostParcel]:
    """Lost parcels awaiting a resolution, oldest first, a page at a time."""
    found = await delivery.open_lost_cases(
        pool_of(request), after=page.after("time", "text"), limit=page.limit + 1
    )
    rows = paged(found, page, request, response, lambda r: (r["opened_at"], r["order_id"]))
    return [LostParcel(**dict(r)) for r in rows]


@router.post("/logistics/{order_id}/resolution", response_model=LostParcelOutcome)
async def resolve_lost_parcel(
    order_id: str,
    body: ResolutionBody,
    request: Request,
    who: Annotated[Principal, Depends(require("logistics", "admin"))],
) -> LostParcelOutcome:
    """Reship (replacement goods, a new booking) or refund (the order closes CANCELLED)."""
    await order_status_or_404(request, order_id)
    with workflow_errors_as_http(order_id):
        return await order_client_of(request).resolve_lost_parcel(
            order_id, LostParcelResolution(action=body.action, by=who.actor, note=body.note)
        )


@router.post("/logistics/{order_id}/rebook", response_model=RebookResponse)
async def retry_booking(
    order_id: str,
    body: RebookBody,
    request: Request,
    who: Annotated[Principal, Depends(require("logistics", "admin"))],
) -> RebookResponse:
    """Try the booking of a parcel no carrier took again (e.g. after a carrier was added)."""
    await order_status_or_404(request, order_id)
    with workflow_errors_as_http(order_id):
        view = await order_client_of(request).retry_booking(
            order_id, RebookRequest(by=who.actor, note=body.note)
        )
    return RebookResponse(
        order_id=order_id,
        status=view.status,
        awaiting=view.awaiting,
        tracking_number=view.tracking_number,
    )
