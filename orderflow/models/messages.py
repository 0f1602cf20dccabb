"""Messages to and from the order workflow: human decisions, events, and query results."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from orderflow.models.order import Order, Sku, Strict
from orderflow.models.policy import OrderPolicy
from orderflow.models.status import Awaiting, OrderStatus

Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Actor = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class OrderWorkflowInput(Strict):
    order: Order
    policy: OrderPolicy = OrderPolicy()
    # When the storefront placed it (the client's clock, so replay never reads one).
    received_at: datetime
    # Set when a run continued as new: where the previous run stood (None for a new order).
    carried: CarriedState | None = None


class RiskReason(Strict):
    code: str
    message: str
    points: float


class RiskAssessment(Strict):
    score: float = Field(ge=0, le=100)
    flagged: bool
    reasons: list[RiskReason] = Field(default_factory=list)


class Classification(Strict):
    order_type: Literal["normal", "promotional", "bulk", "cross_border", "pre_sale"]
    department: str
    rule: str


class ReviewDecision(Strict):
    decision: Literal["approve", "reject"]
    reviewer: Actor = "reviewer"
    note: Note | None = None

    @model_validator(mode="after")
    def _note_to_reject(self) -> ReviewDecision:
        if self.decision == "reject" and not (self.note and self.note.strip()):
            raise ValueError("a note is required to reject an order")
        return self


class CancelRequest(Strict):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    requested_by: Actor = "customer"


class CancelResult(Strict):
    order_id: str
    status: OrderStatus
    refunded: Decimal
    released_lines: int


class StockReceived(Strict):
    sku: Sku
    quantity: int = Field(ge=1)


class PickedReport(Strict):
    by: Actor = "warehouse"


class PackedReport(Strict):
    weight_kg: float = Field(gt=0, le=1000)
    by: Actor = "warehouse"


TrackingStatus = Literal["IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "EXCEPTION", "LOST"]


class TrackingUpdate(Strict):
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    tracking_number: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    status: TrackingStatus
    at: datetime
    details: Note | None = None


class ShipmentBooking(Strict):
    carrier: str
    tracking_number: str
    delivery_note: str
    expected_delivery: datetime
    choice_reason: str
    cost: Decimal


class ReservationOutcome(Strict):
    reserved: bool
    # sku -> units short, when not reserved
    shortages: dict[str, int] = Field(default_factory=dict)


class TimelineEntry(Strict):
    status: OrderStatus
    step: int
    at: datetime
    actor: str = "system"
    details: dict[str, Any] = Field(default_factory=dict)


class OrderView(BaseModel):
    """Live state of one order as the workflow knows it (the `view` query)."""

    model_config = ConfigDict(extra="forbid")

    order_id: str
    status: OrderStatus
    order_type: str | None = None
    department: str | None = None
    risk_score: float | None = None
    risk_reasons: list[RiskReason] = Field(default_factory=list)
    flagged: bool = False
    awaiting: Awaiting | None = None
    tracking_number: str | None = None
    carrier: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)


FeedbackCategory = Literal["delivery", "product", "payment", "other"]


class FeedbackRequest(Strict):
    category: FeedbackCategory
    message: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    # The caller's key: the same key again returns the same ticket.
    request_key: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    by: Actor = "customer"


class FeedbackReceipt(Strict):
    ticket_id: str
    order_id: str
    category: FeedbackCategory
    department: str
    # True when this ticket holds the order's completion until it is resolved.
    holds_completion: bool = False
    # False when the request key had a ticket already.
    created: bool = True


class FeedbackResolved(Strict):
    ticket_id: str
    by: Actor = "customer_service"
    note: Note | None = None


class ProductReview(Strict):
    rating: int = Field(ge=1, le=5)
    comment: Note = ""
    by: Actor = "customer"


class ReviewReceipt(Strict):
    order_id: str
    rating: int
    stored_at: datetime


class ReceiptConfirmation(Strict):
    by: Actor = "customer"


class LostParcelResolution(Strict):
    action: Literal["reship", "refund"]
    by: Actor = "logistics"
    note: Note | None = None


class LostParcelOutcome(Strict):
    order_id: str
    action: Literal["reship", "refund"]
    status: OrderStatus
    carrier: str | None = None
    tracking_number: str | None = None
    refunded: Decimal | None = None


class RebookRequest(Strict):
    by: Actor = "logistics"
    note: Note | None = None


class ReleaseDateChange(Strict):
    """Purchasing moved the release of a pre-sale product the order waits for: the order
    reads the new date from the catalogue and tells its customer."""

    by: Actor = "purchasing"
    note: Note | None = None


class CaptureRetry(Strict):
    """Finance asks a parcel held for its payment to be captured again."""

    by: Actor = "finance"
    note: Note | None = None


class CarriedState(Strict):
    """What a run hands to the next when it continues as new (from shipment on).

    The carried fields of the workflow's state parts (workflows/order_state.py), laid flat and
    built there in one place; importing the workflow fails when a part carries a field that is
    missing here, or the other way round. The flat shape is the contract between runs of
    different deploys: change a field only so that both older and newer runs can read it.
    """

    status: OrderStatus
    timeline: list[TimelineEntry]
    classification: Classification | None
    assessment: RiskAssessment | None
    packed: PackedReport
    booking: ShipmentBooking
    reship_no: int = 0
    lost_cases: int = 0
    lost_reason: str | None = None
    seen_tracking: list[str] = Field(default_factory=list)
    tracking_inbox: list[TrackingUpdate] = Field(default_factory=list)
    follow_up_attempt: int = 0
    follow_up_at: datetime | None = None
    holding_tickets: list[str] = Field(default_factory=list)
    runs: int = 1
    # Refused bookings so far: each hold's event key is numbered by it.
    booking_holds: int = 0
    # The payment moves through the PSP (runs from before that carry False).
    through_psp: bool = False


OrderWorkflowInput.model_rebuild()
