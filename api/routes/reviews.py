"""The risk team's endpoints: flagged orders awaiting a decision, and the decision."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from api.auth import Principal, require
from api.deps import order_client_of, order_status_or_404, pool_of, workflow_errors_as_http
from api.pagination import Page, page_params, paged
from db.repositories import reviews
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
