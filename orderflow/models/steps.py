"""Inputs of the order workflow's activities (each effect keyed by the order id)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field

from orderflow.models.messages import (
    CancelRequest,
    FeedbackRequest,
    LostParcelResolution,
    ProductReview,
    ReviewDecision,
    TrackingUpdate,
)
from orderflow.models.order import Order, Strict


class OrderRef(Strict):
    order_id: str


class AssessRiskInput(Strict):
    order: Order
    review_sla: timedelta
    review_deadline: timedelta


class ReviewOutcomeInput(Strict):
    order_id: str
    decision: ReviewDecision
    timed_out: bool = False


class BackorderReminderInput(Strict):
    order_id: str
    reminder_no: int
    offer_cancellation: bool


class ReleaseHold(Strict):
    """When a pre-order's last pre-sale product is released; None: nothing to wait for."""

    release_at: datetime | None = None


class ReleaseMoveInput(Strict):
    order_id: str
    # The n-th move of this order's release (its event and notice are keyed by it).
    move_no: int
    by: str
    note: str | None = None


class PickTaskInput(Strict):
    order_id: str
    pick_sla: timedelta


class WarehouseReportInput(Strict):
    order_id: str
    by: str
    # None: weigh from the catalogue (automatic warehouse)
    weight_kg: float | None = None


class BookShipmentInput(Strict):
    order: Order
    weight_kg: float
    # The workflow's time of hand-over, so that every retry makes the same carrier choice.
    requested_at: datetime
    # 0: the order's parcel; n: the n-th replacement of a lost one (its own idempotency key).
    reship_no: int = 0


class TrackingInput(Strict):
    order_id: str
    update: TrackingUpdate


class FollowUpInput(Strict):
    order_id: str
    attempt: int
    escalate: bool


class FollowUpResult(Strict):
    carrier_status: str | None
    # The carrier's events as its status query lists them (some may never have reached us).
    events: list[TrackingUpdate] = Field(default_factory=list)


class CompleteInput(Strict):
    order_id: str
    how: str


class CancelInput(Strict):
    order_id: str
    request: CancelRequest


class ShipmentHoldInput(Strict):
    order_id: str
    attempt: int
    reason: str


class UnprocessableInput(Strict):
    """An order a step can never process (its activity failed for good): rejected with the
    reason, and a task for customer service."""

    order_id: str
    # The step the order was in, and the activity that failed.
    step: int
    activity: str
    # "cannot be processed: <what failed>", as the timeline and the queue show it.
    reason: str


class LostParcelInput(Strict):
    order_id: str
    case_no: int
    reason: str
    carrier: str
    tracking_number: str
    carrier_status: str | None = None


class LostParcelResolutionInput(Strict):
    order_id: str
    case_no: int
    resolution: LostParcelResolution
    # The replacement's number, for a reship.
    reship_no: int = 0


class ReplacementOutcome(Strict):
    taken: bool
    shortages: dict[str, int] = Field(default_factory=dict)


class FeedbackInput(Strict):
    order_id: str
    ticket_id: str
    request: FeedbackRequest
    holds_completion: bool = False


class ProductReviewInput(Strict):
    order_id: str
    review: ProductReview
