"""Order statuses and the eight steps: the shop's vocabulary."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class OrderStatus(StrEnum):
    RECEIVED = "RECEIVED"
    CLASSIFIED = "CLASSIFIED"
    PENDING_REVIEW = "PENDING_REVIEW"
    APPROVED = "APPROVED"
    BACKORDERED = "BACKORDERED"
    RESERVED = "RESERVED"
    PICKING = "PICKING"
    PACKED = "PACKED"
    SHIPPED = "SHIPPED"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


class Awaiting(StrEnum):
    """What a running order waits for now: the guard of each person's message (a decision
    is taken only while the order awaits it) and the label operators see."""

    REVIEW_DECISION = "review_decision"
    STOCK = "stock"
    RELEASE = "release"
    PICKED = "picked"
    PACKED = "packed"
    CARRIER_BOOKING = "carrier_booking"
    PAYMENT_CAPTURE = "payment_capture"
    DELIVERY = "delivery"
    LOST_PARCEL_RESOLUTION = "lost_parcel_resolution"
    RECEIPT_CONFIRMATION = "receipt_confirmation"
    COMPLAINT_RESOLUTION = "complaint_resolution"
    REVIEW = "review"


TERMINAL_STATUSES = frozenset({OrderStatus.COMPLETED, OrderStatus.REJECTED, OrderStatus.CANCELLED})

# Once the parcel has left, a cancel is refused.
SHIPPED_OR_LATER = frozenset(
    {
        OrderStatus.SHIPPED,
        OrderStatus.IN_TRANSIT,
        OrderStatus.OUT_FOR_DELIVERY,
        OrderStatus.DELIVERED,
        OrderStatus.COMPLETED,
    }
)


class Step(IntEnum):
    """The eight steps of an order."""

    GENERATION = 1
    CLASSIFICATION = 2
    REVIEW = 3
    INVENTORY = 4
    PICKING_PACKING = 5
    DELIVERY = 6
    TRACKING = 7
    COMPLETION = 8

    @property
    def label(self) -> str:
        return self.name.lower()


# Which step sets which status; cancellation belongs to the step it interrupts.
STEP_OF_STATUS: dict[OrderStatus, Step] = {
    OrderStatus.RECEIVED: Step.GENERATION,
    OrderStatus.CLASSIFIED: Step.CLASSIFICATION,
    OrderStatus.PENDING_REVIEW: Step.REVIEW,
    OrderStatus.APPROVED: Step.REVIEW,
    OrderStatus.REJECTED: Step.REVIEW,
    OrderStatus.BACKORDERED: Step.INVENTORY,
    OrderStatus.RESERVED: Step.INVENTORY,
    OrderStatus.PICKING: Step.PICKING_PACKING,
    OrderStatus.PACKED: Step.PICKING_PACKING,
    OrderStatus.SHIPPED: Step.DELIVERY,
    OrderStatus.IN_TRANSIT: Step.TRACKING,
    OrderStatus.OUT_FOR_DELIVERY: Step.TRACKING,
    OrderStatus.DELIVERED: Step.TRACKING,
    OrderStatus.COMPLETED: Step.COMPLETION,
}
