"""pydantic types: the only types that cross a boundary (workflow, activity, HTTP)."""

from orderflow.models.messages import (
    CancelRequest,
    CancelResult,
    Classification,
    OrderView,
    OrderWorkflowInput,
    PackedReport,
    PickedReport,
    ReservationOutcome,
    ReviewDecision,
    RiskAssessment,
    RiskReason,
    ShipmentBooking,
    StockReceived,
    TimelineEntry,
    TrackingUpdate,
)
from orderflow.models.order import Address, Customer, Order, OrderItem, Payment
from orderflow.models.policy import OrderPolicy
from orderflow.models.status import (
    SHIPPED_OR_LATER,
    STEP_OF_STATUS,
    TERMINAL_STATUSES,
    Awaiting,
    OrderStatus,
    Step,
)

__all__ = [
    "SHIPPED_OR_LATER",
    "STEP_OF_STATUS",
    "TERMINAL_STATUSES",
    "Address",
    "Awaiting",
    "CancelRequest",
    "CancelResult",
    "Classification",
    "Customer",
    "Order",
    "OrderItem",
    "OrderPolicy",
    "OrderStatus",
    "OrderView",
    "OrderWorkflowInput",
    "PackedReport",
    "Payment",
    "PickedReport",
    "ReservationOutcome",
    "ReviewDecision",
    "RiskAssessment",
    "RiskReason",
    "ShipmentBooking",
    "Step",
    "StockReceived",
    "TimelineEntry",
    "TrackingUpdate",
]
