"""Returns: the customer (or the storefront for them) asks to send lines of a delivered
order back; the warehouse records what it found in the parcel.

A request is checked and written in one transaction that holds the order's row lock, so of
two requests for the same line only the first finds it still returnable; only then is its
workflow started. A refused request starts nothing.

Operators find returns across orders: `GET /returns` (by status and order, newest first, a
page at a time) and `GET /returns/{return_id}`, in the shape of the order's own list.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Principal, require
from api.deps import order_status_or_404, pool_of, settings_of
from api.pagination import Page, page_params, paged
from db.repositories import returns as repo
from orderflow.models.returns import (
    InspectionReport,
    LineInspection,
    Resolution,
    ReturnDecision,
    ReturnLineRequest,
    ReturnStatus,
    ReturnView,
    ReturnWorkflowInput,
)
from policies.returns import Refusal
from starter.return_client import ReturnClient
from workflows.returns import workflow_id_for

router = APIRouter(tags=["returns"])

# A client's key for the request: the same key again answers with the same return (200).
RequestKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=100)]


class ReturnBody(BaseModel):
    lines: list[ReturnLineRequest] = Field(min_length=1, max_length=500)
    reason: str = Field(min_length=1, max_length=500)
    # What every line without a `resolution` of its own asks for.
    resolution: Resolution = "refund"


class ReturnAccepted(BaseModel):
    return_id: str
    workflow_id: str
    status: ReturnStatus
    # The order that sends the exchanged lines again, once the return is approved.
    replacement_order_id: str | None = None


class ReturnLineView(BaseModel):
    sku: str
    quantity: int
    unit_price: Decimal
    resolution: Resolution = "refund"
    outcome: str | None = None
    note: str | None = None


class ReturnRecord(BaseModel):
    return_id: str
    order_id: str
    status: ReturnStatus
    reason: str
    requested_at: datetime
    carrier: str | None = None
    tracking_number: str | None = None
    label_url: str | None = None
    refund_amount: Decimal | None = None
    replacement_order_id: str | None = None
    lines: list[ReturnLineView]


class DecisionBody(BaseModel):
    decision: Literal["approve", "reject"]
    note: str = Field(default="", max_length=2000)


class InspectionBody(BaseModel):
    lines: list[LineInspection] = Field(min_length=1, max_length=500)


def return_client_of(request: Request) -> ReturnClient:
    temporal = request.app.state.storefront.temporal
    return ReturnClient(temporal, task_queue=settings_of(request).task_queue)


@router.post(
    "/orders/{order_id}/returns",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReturnAccepted,
    responses={200: {"description": "the Idempotency-Key named a return asked for before"}},
)
async def request_return(
    order_id: str,
    body: ReturnBody,
    request: Request,
    response: Response,
    who: Annotated[Principal, Depends(require("storefront", "admin", customer=True))],
    request_key: RequestKey = None,
) -> ReturnAccepted:
    await order_status_or_404(request, order_id)
    settings = settings_of(request)
    policy = settings.return_policy
    pool = pool_of(request)
    async with pool.acquire() as conn, conn.transaction():
        opened = await repo.open_return(
            conn,
            order_id=order_id,
            lines=body.lines,
            reason=body.reason,
            requested_by=who.actor,
            policy=policy,
            now=datetime.now(UTC),
            request_key=request_key,
            resolution=body.resolution,
        )
    if opened is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"order {order_id} has not been recorded yet")
    if isinstance(opened, Refusal):
        raise HTTPException(opened.status, opened.detail)
    if not opened.created:
        response.status_code = status.HTTP_200_OK
        return ReturnAccepted(
            return_id=opened.return_id,
            workflow_id=workflow_id_for(opened.return_id),
            status=opened.status,
        )
    try:
        await return_client_of(request).start(
            ReturnWorkflowInput(
                return_id=opened.return_id,
                order_id=order_id,
                lines=opened.lines,
                reason=body.reason,
                requested_by=who.actor,
                shipping_share=opened.shipping_share,
                decision_needed=opened.decision_needed,
                policy=policy,
                replacement=opened.replacement,
                order_policy=settings.order_policy if opened.replacement else None,
            )
        )
    except RPCError as exc:
        # Not started: the request holds no quantity, the customer may ask again.
        await repo.withdraw(pool, opened.return_id)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "return service busy, retry"
        ) from exc
    return ReturnAccepted(
        return_id=opened.return_id,
        workflow_id=workflow_id_for(opened.return_id),
        status=opened.status,
        replacement_order_id=opened.replacement.order_id if opened.replacement else None,
    )


@router.get("/orders/{order_id}/returns", response_model=list[ReturnRecord])
async def list_returns(
    order_id: str,
    request: Request,
    _: Annotated[Principal, Depends(require("storefront", "admin", "warehouse", customer=True))],
) -> list[ReturnRecord]:
    await order_status_or_404(request, order_id)
    rows = await repo.returns_of_order(pool_of(request), order_id)
    return [_record(dict(r)) for r in rows]


@router.get("/returns", response_model=list[ReturnRecord])
async def returns_across_orders(
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require("admin", "warehouse"))],
    page: Annotated[Page, Depends(page_params)],
    return_status: Annotated[
        ReturnStatus | None, Query(alias="status", description="Only returns in this status.")
    ] = None,
    order_id: Annotated[
        str | None, Query(max_length=200, description="Only this order's returns.")
    ] = None,
) -> list[ReturnRecord]:
    """Returns across orders, newest first, a page at a time (`limit`, `cursor`; the next in
    `X-Next-Cursor`)."""
    after = page.after("time", "text", "int")
    found = await repo.list_returns(
        pool_of(request),
        status=return_status,
        order_id=order_id,
        limit=page.limit + 1,
        after=(after[0], after[1], after[2]) if after else None,
    )
    rows = paged(
        found, page, request, response, lambda r: (r["requested_at"], r["order_id"], r["n"])
    )
    return [_record(dict(r)) for r in rows]


@router.get("/returns/{return_id}", response_model=ReturnRecord)
async def show_return(
    return_id: str,
    request: Request,
    _: Annotated[Principal, Depends(require("admin", "warehouse", "storefront"))],
) -> ReturnRecord:
    """One return, as its order's list shows it."""
    pool = pool_of(request)
    row = await repo.return_of(pool, return_id)
    if row is not None:
        for found in await repo.returns_of_order(pool, row["order_id"]):
            if found["return_id"] == return_id:
                return _record(dict(found))
    # Unknown, or withdrawn between the two reads (its workflow could not be started).
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"return {return_id} not found")


@router.post("/returns/{return_id}/decision", response_model=ReturnView)
async def decide_return(
    return_id: str,
    body: DecisionBody,
    request: Request,
    who: Annotated[Principal, Depends(require("admin"))],
) -> ReturnView:
    """Customer service (admin: the department has no role of its own) decides a return
    outside the automatic rules."""
    await _known(request, return_id)
    decision = ReturnDecision(approve=body.decision == "approve", note=body.note, by=who.actor)
    return await _update(return_id, return_client_of(request).decide(return_id, decision))


@router.post("/warehouse/returns/{return_id}/inspection", response_model=ReturnView)
async def inspect_return(
    return_id: str,
    body: InspectionBody,
    request: Request,
    who: Annotated[Principal, Depends(require("warehouse", "admin"))],
) -> ReturnView:
    await _known(request, return_id)
    report = InspectionReport(lines=body.lines, by=who.actor)
    return await _update(return_id, return_client_of(request).inspect(return_id, report))


async def _known(request: Request, return_id: str) -> None:
    if await repo.return_of(pool_of(request), return_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"return {return_id} not found")


async def _update(return_id: str, call: Awaitable[ReturnView]) -> ReturnView:
    """The Update's answer; refused, a 409 (422 for lines it does not have) with the
    workflow's reason."""
    try:
        return await call
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == "InvalidInput":
            raise HTTPException(422, cause.message) from exc
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        raise HTTPException(status.HTTP_409_CONFLICT, message) from exc
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"return {return_id} awaits nothing any more"
            ) from exc
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "return service busy, retry"
        ) from exc


def _record(row: dict[str, Any]) -> ReturnRecord:
    lines = row.pop("lines")
    return ReturnRecord(
        return_id=row["return_id"],
        order_id=row["order_id"],
        status=row["status"],
        reason=row["reason"],
        requested_at=row["requested_at"],
        carrier=row["carrier"],
        tracking_number=row["tracking_number"],
        label_url=row["label_url"],
        refund_amount=row["refund_amount"],
        replacement_order_id=row["replacement_order_id"],
        lines=[ReturnLineView.model_validate(line) for line in lines],
    )
