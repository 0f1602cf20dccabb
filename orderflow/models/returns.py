"""Returns: what a customer sends back of a delivered order, the policy it runs under, what
the return workflow and its activities exchange, and the carrier's return-label wire types.

One `ReturnWorkflow` per return, id `return-<return_id>` where `return_id` is
`<order_id>-<n>` (the order's n-th return).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from orderflow.models.order import Identifier, Money, Order, PositiveMoney, Sku, Strict
from orderflow.models.policy import OrderPolicy

ReturnReason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)
]
InspectionNote = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Actor = Annotated[str, StringConstraints(min_length=1, max_length=100)]
ReturnId = Annotated[str, StringConstraints(min_length=3, max_length=80)]


class ReturnStatus(StrEnum):
    """Where a return stands (the `returns.status` column)."""

    # Waits for customer service's decision (outside the automatic rules).
    REQUESTED = "REQUESTED"
    APPROVED = "APPROVED"
    # The return label is booked and sent: the parcel is awaited.
    LABEL_SENT = "LABEL_SENT"
    IN_TRANSIT = "IN_TRANSIT"
    # Back at the warehouse, awaiting inspection.
    ARRIVED = "ARRIVED"
    INSPECTED = "INSPECTED"
    REFUNDED = "REFUNDED"
    # Every line was exchanged: the replacement order carries on, nothing is refunded.
    EXCHANGED = "EXCHANGED"
    # Ends without a refund: nothing accepted, or the parcel never sent back in time.
    CLOSED = "CLOSED"
    REJECTED = "REJECTED"


# A return in one of these holds no quantity: its lines may be asked for again.
RELEASED_STATUSES = frozenset({ReturnStatus.REJECTED, ReturnStatus.CLOSED})

InspectionOutcome = Literal["restock", "dispose"]
# What the customer gets for a returned line: the money back, or the same item again.
Resolution = Literal["refund", "exchange"]


class ReturnPolicy(BaseModel):
    """The return's durations and refund rules, carried in the workflow input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # How long after delivery a return may be asked for.
    window: timedelta = timedelta(days=30)
    # How long the customer has to hand the parcel to the carrier once the label is sent.
    send_back_within: timedelta = timedelta(days=14)
    # How long the warehouse has to inspect a parcel that arrived before its lead is told.
    inspection_sla: timedelta = timedelta(days=2)
    # A disposed unit (damaged, used) is refunded too unless this is off.
    refund_disposed: bool = True
    # The order's shipping is refunded with the return that brings the last unit back.
    refund_shipping_on_full_return: bool = True
    # When an exchanged line's replacement order is placed: as soon as the return is
    # approved (the customer waits least), or once the parcel is back at the warehouse.
    exchange_on: Literal["approval", "arrival"] = "approval"


class ReturnLineRequest(Strict):
    sku: Sku
    quantity: int = Field(ge=1, le=100_000)
    # None: the request's own `resolution`.
    resolution: Resolution | None = None


class ReturnLine(Strict):
    """A line of a return, priced as the order was."""

    sku: Sku
    quantity: int = Field(ge=1, le=100_000)
    unit_price: PositiveMoney
    resolution: Resolution = "refund"


class ReturnWorkflowInput(Strict):
    return_id: ReturnId
    order_id: Identifier
    lines: list[ReturnLine] = Field(min_length=1, max_length=500)
    reason: ReturnReason
    requested_by: Actor
    # The order's shipping charge refunded with this return (0 when not this one's).
    shipping_share: Money = Decimal("0.00")
    # Why customer service must decide first (outside the automatic rules); None: approved.
    decision_needed: Annotated[str, StringConstraints(max_length=500)] | None = None
    policy: ReturnPolicy = Field(default_factory=ReturnPolicy)
    # The order placed for the exchanged lines (None: nothing exchanged) and the policy it
    # runs under, as a storefront's order would.
    replacement: Order | None = None
    order_policy: OrderPolicy | None = None


class ReturnDecision(Strict):
    """Customer service's answer to a return outside the automatic rules."""

    approve: bool
    note: InspectionNote = ""
    by: Actor = "customer_service"


class ReturnDecisionInput(Strict):
    return_id: ReturnId
    order_id: Identifier
    decision: ReturnDecision
    # Which time customer service is asked (0: the request itself; then each refused label).
    round: int = Field(default=0, ge=0)


class ReturnDecisionNeeded(Strict):
    return_id: ReturnId
    order_id: Identifier
    why: Annotated[str, StringConstraints(max_length=500)]
    round: int = Field(default=0, ge=0)


def decision_key(return_id: str, what: str, round: int) -> str:
    """The event key of a decision asked or made: the first keeps the key it always had."""
    return f"return.{return_id}.{what}" if round == 0 else f"return.{return_id}.{what}.{round}"


class LineInspection(Strict):
    sku: Sku
    outcome: InspectionOutcome
    note: InspectionNote = ""


class InspectionReport(Strict):
    """The warehouse's finding for some or all lines of an arrived return."""

    lines: list[LineInspection] = Field(min_length=1, max_length=500)
    by: Actor = "warehouse"


class ReturnView(Strict):
    return_id: str
    order_id: str
    status: ReturnStatus
    tracking_number: str | None = None
    inspected: dict[str, InspectionOutcome] = Field(default_factory=dict)
    replacement_order_id: str | None = None


class ReturnRef(Strict):
    return_id: ReturnId
    order_id: Identifier


class ReturnLabelInput(ReturnRef):
    # The customer's deadline to hand the parcel in, as the label's mail tells it.
    send_back_by: datetime


class ReturnTracking(Strict):
    return_id: ReturnId
    order_id: Identifier
    status: Literal["IN_TRANSIT", "ARRIVED"]
    at: datetime


class ReturnInspectionInput(Strict):
    return_id: ReturnId
    order_id: Identifier
    line: LineInspection
    quantity: int = Field(ge=1)
    by: Actor


class Restocked(Strict):
    # Orders waiting for the SKU that the restocked units served, first come first served.
    served_orders: list[str] = Field(default_factory=list)


class ReturnRefundInput(Strict):
    return_id: ReturnId
    order_id: Identifier
    amount: Money
    # Some lines were exchanged: a return with nothing to refund ends EXCHANGED, not CLOSED.
    exchanged: bool = False


class ReturnExchangeInput(Strict):
    return_id: ReturnId
    order_id: Identifier
    replacement_order_id: Identifier


class ReturnRefundOutcome(Strict):
    status: ReturnStatus
    amount: Money


class ReturnLabel(Strict):
    carrier: str
    tracking_number: str
    label_url: str


def refund_amount(
    lines: list[ReturnLine],
    outcomes: dict[str, InspectionOutcome],
    policy: ReturnPolicy,
    shipping_share: Decimal,
) -> Decimal:
    """What goes back to the customer for the inspected lines: restocked ones always,
    disposed ones per policy, exchanged ones never (their replacement is the answer); the
    shipping share only when every line is refunded."""
    refunded = [
        line
        for line in lines
        if line.resolution == "refund"
        and (
            outcomes.get(line.sku) == "restock"
            or (outcomes.get(line.sku) == "dispose" and policy.refund_disposed)
        )
    ]
    amount = sum((line.unit_price * line.quantity for line in refunded), Decimal("0.00"))
    if refunded and len(refunded) == len(lines):
        amount += shipping_share
    return amount.quantize(Decimal("0.01"))


# --- The carrier's return labels (what activities send; the simulator implements it) ---


class ReturnOrigin(Strict):
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=2, max_length=12)
    ]


class ReturnLabelRequest(Strict):
    """`POST /carriers/{carrier}/returns`, sent with an `Idempotency-Key` header."""

    order_id: Identifier
    return_id: ReturnId
    weight_kg: float = Field(gt=0, le=1000)
    origin: ReturnOrigin
    # Where the parcel's tracking events go; the carrier's default webhook when omitted.
    webhook_url: str | None = Field(default=None, max_length=2000)


class ReturnLabelResponse(Strict):
    carrier: str
    order_id: str
    return_id: str
    tracking_number: str
    label_url: str
    booked_at: datetime


__all__ = [
    "RELEASED_STATUSES",
    "InspectionOutcome",
    "InspectionReport",
    "LineInspection",
    "Resolution",
    "Restocked",
    "ReturnDecision",
    "ReturnDecisionInput",
    "ReturnDecisionNeeded",
    "ReturnExchangeInput",
    "ReturnInspectionInput",
    "ReturnLabel",
    "ReturnLabelInput",
    "ReturnLabelRequest",
    "ReturnLabelResponse",
    "ReturnLine",
    "ReturnLineRequest",
    "ReturnOrigin",
    "ReturnPolicy",
    "ReturnRef",
    "ReturnRefundInput",
    "ReturnRefundOutcome",
    "ReturnStatus",
    "ReturnTracking",
    "ReturnView",
    "ReturnWorkflowInput",
    "decision_key",
    "refund_amount",
]
