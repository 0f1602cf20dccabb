"""The risk team's endpoints: flagged orders awaiting a decision, one task with the facts to
decide with, and the decision."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from api.auth import Principal, require
from api.deps import order_client_of, order_status_or_404, pool_of, workflow_errors_as_http
from api.pagination import Page, page_params, paged
from db.repositories import review_facts, reviews
from orderflow.models import ReviewDecision

router = APIRouter(tags=["reviews"])


class PendingReview(BaseModel):
    order_id: str
    status: str
    score: float
    reasons: list[dict[str, Any]]
    opened_at: str
    due_at: str
    deadline_at: str
    escalated: bool
    customer_id: str
    total: str
    currency: str


class DecisionBody(BaseModel):
    decision: Literal["approve", "reject"]
    note: str | None = Field(default=None, max_length=2000)
    # Optional: the reviewer's name as a signature, added to the note. The decision's actor
    # is always the authenticated principal.
    reviewer: str | None = Field(default=None, min_length=1, max_length=100)


class DecisionResponse(BaseModel):
    order_id: str
    decision: str
    status: str


@router.get("/reviews/pending", response_model=list[PendingReview])
async def pending_reviews(
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require("reviewer", "admin"))],
    page: Annotated[Page, Depends(page_params)],
) -> list[PendingReview]:
    """Oldest first, a page at a time (`limit`, `cursor`; the next in `X-Next-Cursor`)."""
    found = await reviews.pending(
        pool_of(request), after=page.after("time", "text"), limit=page.limit + 1
    )
    rows = paged(found, page, request, response, lambda r: (r["opened_at"], r["order_id"]))
    return [
        PendingReview(
            order_id=r["order_id"],
            status=r["task_status"],
            score=float(r["score"]),
            reasons=r["reasons"],
            opened_at=r["opened_at"].isoformat(),
            due_at=r["due_at"].isoformat(),
            deadline_at=r["deadline_at"].isoformat(),
            escalated=r["task_status"] == "escalated",
            customer_id=r["customer_id"],
            total=str(r["total"]),
            currency=r["currency"],
        )
        for r in rows
    ]


class CustomerHistory(BaseModel):
    """The customer's other orders in numbers."""

    orders: int
    amounts: dict[str, str]
    first_order_at: str | None
    flagged: int
    approved: int
    rejected: int
    timed_out: int
    awaiting_review: int
    reported_fraud: int


class ReviewTask(BaseModel):
    """One review task: the score and its reasons beside the facts to decide with."""

    order_id: str
    status: str
    task_status: str
    score: float
    reasons: list[dict[str, Any]]
    risk_model_version: int | None
    opened_at: str
    due_at: str
    deadline_at: str
    escalated_at: str | None
    decided_at: str | None
    decided_by: str | None
    decision: str | None
    note: str | None
    placed_at: str
    channel: str
    customer: dict[str, str | None]
    items: list[dict[str, Any]]
    total: str
    currency: str
    shipping_address: dict[str, Any]
    billing_address: dict[str, Any] | None
    payment: dict[str, str | None]
    customer_history: CustomerHistory


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


@router.get("/reviews/{order_id}", response_model=ReviewTask)
async def review_task(
    order_id: str,
    request: Request,
    _: Annotated[Principal, Depends(require("reviewer", "admin"))],
) -> ReviewTask:
    """The order's review task with its lines, total, addresses, payment and the customer's
    history (orders and amounts to date, earlier flags and how they ended)."""
    pool = pool_of(request)
    task = await review_facts.task_with_order(pool, order_id)
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {order_id} has no review task")
    history = await review_facts.customer_history(pool, task["customer_id"], order_id)
    return ReviewTask(
        order_id=order_id,
        status=task["status"],
        task_status=task["task_status"],
        score=task["score"],
        reasons=task["reasons"],
        risk_model_version=task["risk_model_version"],
        opened_at=task["opened_at"].isoformat(),
        due_at=task["due_at"].isoformat(),
        deadline_at=task["deadline_at"].isoformat(),
        escalated_at=_iso(task["escalated_at"]),
        decided_at=_iso(task["decided_at"]),
        decided_by=task["decided_by"],
        decision=task["decision"],
        note=task["note"],
        placed_at=task["placed_at"].isoformat(),
        channel=task["channel"],
        customer={
            "id": task["customer_id"],
            "email": task["customer_email"],
            "name": task["customer_name"],
        },
        items=task["items"],
        total=str(task["total"]),
        currency=task["currency"],
        shipping_address=task["shipping_address"],
        billing_address=task["billing_address"],
        payment={
            "method": task["payment_method"],
            "status": task["payment_status"],
            "amount": str(task["payment_amount"]) if task["payment_amount"] is not None else None,
            "transaction_id": task["transaction_id"],
        },
        customer_history=CustomerHistory(
            orders=history["orders"],
            amounts=history["amounts"],
            first_order_at=_iso(history["first_order_at"]),
            flagged=history["flagged"],
            approved=history["approved"],
            rejected=history["rejected"],
            timed_out=history["timed_out"],
            awaiting_review=history["awaiting_review"],
            reported_fraud=history["reported_fraud"],
        ),
    )


@router.post("/reviews/{order_id}/decision", response_model=DecisionResponse)
async def decide_review(
    order_id: str,
    body: DecisionBody,
    request: Request,
    who: Annotated[Principal, Depends(require("reviewer"))],
) -> DecisionResponse:
    # The decision is on record under whoever's token made it. A name in the body is the
    # reviewer's own words, kept with the note, never the actor.
    decision = ReviewDecision(decision=body.decision, reviewer=who.actor, note=body.note)
    if body.reviewer:
        signed = f"(signed: {body.reviewer})"
        note = f"{body.note}\n{signed}" if body.note and body.note.strip() else signed
        decision = ReviewDecision(decision=body.decision, reviewer=who.actor, note=note)
    await order_status_or_404(request, order_id)
    with workflow_errors_as_http(order_id):
        view = await order_client_of(request).decide_review(order_id, decision)
    return DecisionResponse(order_id=order_id, decision=body.decision, status=view.status)
