"""After the order is placed: the customer's feedback tickets, receipt confirmation and
review, and the departments' resolution of a ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from pydantic import BaseModel, Field
from temporalio.service import RPCError, RPCStatusCode

from api.auth import OPERATORS, Principal, require
from api.deps import (
    order_client_of,
    order_status_or_404,
    pool_of,
    settings_of,
    workflow_errors_as_http,
)
from api.idempotency import first_answer, remember, required_key
from api.limits import rate_limited
from api.pagination import Page, page_params, paged
from db.repositories import cancellation, events, feedback, notifications
from orderflow.models.messages import (
    FeedbackReceipt,
    FeedbackRequest,
    FeedbackResolved,
    ProductReview,
    ReceiptConfirmation,
    ReviewReceipt,
)
from orderflow.process import department

router = APIRouter(tags=["feedback"])


class FeedbackBody(BaseModel):
    category: Literal["delivery", "product", "payment", "other"]
    message: str = Field(min_length=1, max_length=2000)
    # The request's idempotency key, when not sent as the `Idempotency-Key` header (one of
    # the two is required); the same key again returns the same ticket.
    request_key: str | None = Field(default=None, min_length=1, max_length=100)


class ReviewBody(BaseModel):
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2000)


class ResolutionBody(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


class ConfirmationResponse(BaseModel):
    order_id: str
    status: str


class Ticket(BaseModel):
    ticket_id: str
    order_id: str
    category: str
    department: str
    status: str
    holds_completion: bool
    created_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None


@router.post(
    "/orders/{order_id}/feedback",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackReceipt,
    responses={200: {"description": "the request key had a ticket already"}},
)
async def submit_feedback(
    order_id: str,
    body: FeedbackBody,
    request: Request,
    response: Response,
    who: Annotated[Principal, Depends(require("storefront", customer=True))],
    _: Annotated[None, Depends(rate_limited("feedback"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=100)] = None,
) -> FeedbackReceipt:
    await order_status_or_404(request, order_id)
    key = required_key(idempotency_key, alternative=body.request_key)
    # Before the key is bound, so a refused ticket may be sent again, changed, with it.
    await _refuse_beyond_ticket_cap(request, order_id, f"{order_id}:{key}")
    # Keys are the order's own: one customer's key never finds another order's ticket.
    scope = f"feedback.{order_id}"
    first = await first_answer(
        pool_of(request), scope, key, body.model_dump(mode="json", exclude={"request_key"})
    )
    if first is not None:
        response.status_code = status.HTTP_200_OK
        return FeedbackReceipt.model_validate({**first.response, "created": False})
    with workflow_errors_as_http(order_id):
        receipt = await order_client_of(request).submit_feedback(
            order_id,
            FeedbackRequest(
                category=body.category,
                message=body.message,
                # Scoped by order: one customer's key never finds another order's ticket.
                request_key=f"{order_id}:{key}",
                by=who.actor,
            ),
        )
    if not receipt.created:
        response.status_code = status.HTTP_200_OK
    else:
        await remember(
            pool_of(request),
            scope,
            key,
            status_code=status.HTTP_201_CREATED,
            response=receipt.model_dump(mode="json"),
        )
    return receipt


async def _refuse_beyond_ticket_cap(request: Request, order_id: str, request_key: str) -> None:
    """409 for a new ticket beyond the order's cap; a retry of a known ticket still answers.
    Checked before the update, so requests racing each other may pass the cap by a few."""
    cap = settings_of(request).feedback_tickets_per_order
    count, known = await feedback.ticket_cap_state(pool_of(request), order_id, request_key)
    if count >= cap and not known:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"order {order_id} has {count} feedback tickets, the most one order may open; "
            "add to an open ticket or contact customer service",
        )


@router.get("/orders/{order_id}/feedback", response_model=list[Ticket])
async def order_tickets(
    order_id: str,
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require(*OPERATORS, customer=True))],
    page: Annotated[Page, Depends(page_params)],
) -> list[Ticket]:
    await order_status_or_404(request, order_id)
    found = await feedback.tickets_of(
        pool_of(request), order_id, after=page.after("time", "text"), limit=page.limit + 1
    )
    return [
        Ticket(order_id=order_id, **dict(r))
        for r in paged(found, page, request, response, lambda r: (r["created_at"], r["ticket_id"]))
    ]


@router.post("/orders/{order_id}/confirm-receipt", response_model=ConfirmationResponse)
async def confirm_receipt(
    order_id: str,
    request: Request,
    who: Annotated[Principal, Depends(require("storefront", customer=True))],
) -> ConfirmationResponse:
    await order_status_or_404(request, order_id)
    with workflow_errors_as_http(order_id):
        view = await order_client_of(request).confirm_receipt(
            order_id, ReceiptConfirmation(by=who.actor)
        )
    return ConfirmationResponse(order_id=order_id, status=view.status)


@router.post(
    "/orders/{order_id}/review", status_code=status.HTTP_201_CREATED, response_model=ReviewReceipt
)
async def submit_review(
    order_id: str,
    body: ReviewBody,
    request: Request,
    who: Annotated[Principal, Depends(require("storefront", customer=True))],
) -> ReviewReceipt:
    await order_status_or_404(request, order_id)
    with workflow_errors_as_http(order_id):
        return await order_client_of(request).submit_review(
            order_id, ProductReview(rating=body.rating, comment=body.comment, by=who.actor)
        )


@router.post("/feedback/{ticket_id}/resolution", response_model=Ticket)
async def resolve_ticket(
    ticket_id: str,
    body: ResolutionBody,
    request: Request,
    who: Annotated[Principal, Depends(require(*OPERATORS))],
) -> Ticket:
    """The ticket's department (its operator role, or admin) resolves it, once."""
    pool = pool_of(request)
    found = await feedback.ticket(pool, ticket_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"ticket {ticket_id} not found")
    owner = department(found["department"])
    allowed = {"admin"} | ({owner.role} if owner is not None and owner.role else set())
    if who.role not in allowed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"ticket {ticket_id} belongs to {found['department']}; allowed: {', '.join(sorted(allowed))}",
        )
    order_id = found["order_id"]
    async with pool.acquire() as conn, conn.transaction():
        if await feedback.resolve_ticket(conn, ticket_id, by=who.actor, resolution=body.note):
            await events.record_event(
                conn,
                order_id=order_id,
                event_key=f"feedback.{ticket_id}.resolved",
                step=await cancellation.current_step(conn, order_id),
                kind="feedback_resolved",
                actor=who.actor,
                details={"ticket_id": ticket_id, "note": body.note},
            )
            await notifications.email_customer(
                conn,
                settings_of(request),
                key=f"{order_id}:feedback:{ticket_id}:resolved",
                order_id=order_id,
                kind="feedback_resolved",
                context={"ticket_id": ticket_id, "note": body.note},
            )
            if found["holds_completion"]:
                # Inside the transaction: if Temporal is unreachable, nothing is resolved
                # and the caller can simply try again.
                try:
                    await order_client_of(request).feedback_resolved(
                        order_id,
                        FeedbackResolved(ticket_id=ticket_id, by=who.actor, note=body.note),
                    )
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
    resolved = await feedback.ticket(pool, ticket_id)
    assert resolved is not None
    return Ticket(
        **{k: v for k, v in dict(resolved).items() if k not in ("message", "customer_email")}
    )
