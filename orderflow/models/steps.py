"""Inputs of the order workflow's activities (each effect keyed by the order id)."""

from __future__ import annotations

from datetime import datetime, timedelta

from orderflow.models.messages import CancelRequest, ReviewDecision, TrackingUpdate
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


class TrackingInput(Strict):
    order_id: str
    update: TrackingUpdate


class FollowUpInput(Strict):
    order_id: str
    attempt: int
    escalate: bool


class FollowUpResult(Strict):
    carrier_status: str | None


class CompleteInput(Strict):
    order_id: str
    how: str


class CancelInput(Strict):
    order_id: str
    request: CancelRequest
