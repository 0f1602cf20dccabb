"""What the order workflow knows, by step: a few small pydantic models, one per step, held
together by `OrderState`.

Every field of a part is carried across continue-as-new unless it is declared `PerRun[...]`.
The per-run fields are messages in flight and the flags that answer them; when a run
continues as new (in the tracking loop, after every handler has finished) each of them is at
the value a fresh run starts with, or is implied by the carried fields (`OrderState.resume`
sets it), or matters only before the parcel was handed to the carrier.

`OrderState.carry` lays the carried fields of every part flat into `CarriedState`, the one
place the continue-as-new input is built; `OrderState.resume` takes them back. The flat
shape is the wire contract between runs, unchanged from before the state was split by step,
so a run that continued as new on older code resumes here and the other way round. The check
at the end of this module fails on import when a carried field and `CarriedState` disagree:
a field added to a part cannot be forgotten across continue-as-new.

Pure data and bookkeeping only: no Temporal call, no clock, no I/O (the workflow does those).
"""

from __future__ import annotations

import bisect
import copy
from datetime import datetime
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from orderflow.models import (
    Awaiting,
    CancelRequest,
    CancelResult,
    Classification,
    OrderStatus,
    PackedReport,
    PickedReport,
    ReviewDecision,
    RiskAssessment,
    ShipmentBooking,
    TimelineEntry,
    TrackingUpdate,
)
from orderflow.models.messages import (
    CarriedState,
    LostParcelOutcome,
    LostParcelResolution,
    ReceiptConfirmation,
)

T = TypeVar("T")
# Not carried: excluded from the part's serialised form, which is exactly what is carried.
PerRun = Annotated[T, Field(exclude=True)]


class Part(BaseModel):
    """One step's state. Mutable: the workflow updates it in place as the order moves on."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def carried_fields(cls) -> list[str]:
        return [name for name, info in cls.model_fields.items() if not info.exclude]


class Progress(Part):
    """What people see of the order (its status and timeline) and which run this is."""

    # None until step 1 has recorded the order.
    status: OrderStatus | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    runs: int = 1
    # The guard of each person's message and the label operators see; every run sets it
    # afresh where it waits.
    awaiting: PerRun[Awaiting | None] = None

    def current_step(self) -> int:
        return self.timeline[-1].step if self.timeline else 1


class ReviewState(Part):
    """Steps 2 and 3: how the order was classified and assessed, and the reviewer's decision."""

    classification: Classification | None = None
    assessment: RiskAssessment | None = None
    decision: PerRun[ReviewDecision | None] = None
    # The decision is recorded and the status set: `decide_review` may answer.
    recorded: PerRun[bool] = False


class StockState(Part):
    """Step 4: stock receipts for the order's SKUs, each a reason to try the reservation again;
    for a pre-order, the release it waits for and purchasing's moves of it."""

    signals: PerRun[int] = 0
    release_at: PerRun[datetime | None] = None
    # Counters the `move_release` Update waits on.
    release_moves: PerRun[int] = 0
    release_moved: PerRun[int] = 0


class WarehouseState(Part):
    """Step 5: the warehouse's reports; the packed one (its weight) books every parcel."""

    packed: PackedReport | None = None
    picked: PerRun[PickedReport | None] = None
    picked_recorded: PerRun[bool] = False
    packed_recorded: PerRun[bool] = False


class ParcelState(Part):
    """Step 6: the parcel with the carrier (the n-th replacement, when reshipped) and the
    bookings the carriers refused on the way."""

    booking: ShipmentBooking | None = None
    reship_no: int = 0
    # Refused bookings so far: each hold's event key is numbered by it.
    booking_holds: int = 0
    # The parcel is being handed to the carrier: from here on a cancel is refused.
    shipping_started: PerRun[bool] = False
    # Counters the `retry_booking` Update waits on.
    rebook_requests: PerRun[int] = 0
    booking_outcomes: PerRun[int] = 0


class TrackingState(Part):
    """Step 7: the carrier's events and the follow-ups when it is silent."""

    # Sorted: the carried list is the same whatever order the events came in.
    seen_tracking: list[str] = Field(default_factory=list)
    tracking_inbox: list[TrackingUpdate] = Field(default_factory=list)
    follow_up_attempt: int = 0
    follow_up_at: datetime | None = None
    # A run continues as new only before delivery.
    delivered: PerRun[bool] = False

    def receive(self, update: TrackingUpdate) -> None:
        """Keep a new event for the tracking loop; a repeat, or one after delivery, is dropped.
        Kept even before the booking is known here: a fast carrier may report first."""
        if update.event_id in self.seen_tracking or self.delivered:
            return
        bisect.insort(self.seen_tracking, update.event_id)
        self.tracking_inbox.append(update)

    def next_parcel(self) -> None:
        """A replacement is under way: nothing delivered, no follow-up made or due yet."""
        self.delivered = False
        self.follow_up_attempt = 0
        self.follow_up_at = None


class LostParcelState(Part):
    """Steps 6–7 when the parcel is lost: the open case and logistics' resolution of it."""

    lost_reason: str | None = None
    lost_cases: int = 0
    # Logistics' answer to the open case and what the workflow made of it; a case is resolved
    # within one run (a run continues as new only while no case is open).
    resolution: PerRun[LostParcelResolution | None] = None
    outcome: PerRun[LostParcelOutcome | None] = None
    error: PerRun[str | None] = None

    def open_case(self) -> int:
        """A new case, numbered; whatever resolved an earlier one does not resolve this one."""
        self.resolution = None
        self.outcome = None
        self.error = None
        self.lost_cases += 1
        return self.lost_cases


class AftercareState(Part):
    """Step 8 and the feedback taken all along: complaints holding completion, the customer's
    receipt confirmation, the review window."""

    # Sorted, as the tracking events seen.
    holding_tickets: list[str] = Field(default_factory=list)
    receipt_confirmed: PerRun[ReceiptConfirmation | None] = None
    completing: PerRun[bool] = False
    completed: PerRun[bool] = False
    review_open: PerRun[bool] = False
    review_received: PerRun[bool] = False
    # The process is ending: no new feedback or review is taken.
    closing: PerRun[bool] = False

    def hold(self, ticket_id: str) -> None:
        if ticket_id not in self.holding_tickets:
            bisect.insort(self.holding_tickets, ticket_id)

    def release(self, ticket_id: str) -> bool:
        """True when the ticket was holding completion (and no longer does)."""
        if ticket_id not in self.holding_tickets:
            return False
        self.holding_tickets.remove(ticket_id)
        return True


class PaymentState(Part):
    """The order's payment at the PSP: an authorisation is captured when the parcel is
    handed over, renewed while the order waits, voided or refunded when the order closes."""

    # Moved through the PSP (decided once, by the first run's patch; runs that began before
    # that carry False and keep the old way: the checkout captured, refunds are ledger rows).
    through_psp: bool = False
    # The rest matters only until the parcel is handed over, when the payment is captured:
    # a continued run starts captured (`OrderState.resume`).
    captured: PerRun[bool] = False
    # Captures asked so far: the n-th is the PSP's operation `capture-<order>-<n>`.
    captures: PerRun[int] = 0
    # When the authorisation lapses unless renewed; None when nothing waits on it.
    authorization_expires_at: PerRun[datetime | None] = None
    # Counters the `retry_capture` Update waits on.
    capture_requests: PerRun[int] = 0
    capture_outcomes: PerRun[int] = 0
    # A renewal is being asked: a capture waits for its answer.
    renewing: PerRun[bool] = False
    # The order is closing (cancelled, rejected): nothing more to renew.
    settled: PerRun[bool] = False

    def awaits_renewal(self) -> bool:
        return (
            self.through_psp
            and not self.captured
            and not self.settled
            and self.authorization_expires_at is not None
        )


class CancellationState(Part):
    """A cancel taken (Update or durable signal) and its result, once the order is undone.
    Never carried: a cancel is refused once the parcel is with the carrier."""

    request: PerRun[CancelRequest | None] = None
    result: PerRun[CancelResult | None] = None


class OrderState(BaseModel):
    """Everything one run of the order workflow knows, by step."""

    model_config = ConfigDict(extra="forbid")

    progress: Progress = Field(default_factory=Progress)
    review: ReviewState = Field(default_factory=ReviewState)
    stock: StockState = Field(default_factory=StockState)
    warehouse: WarehouseState = Field(default_factory=WarehouseState)
    parcel: ParcelState = Field(default_factory=ParcelState)
    tracking: TrackingState = Field(default_factory=TrackingState)
    lost_parcel: LostParcelState = Field(default_factory=LostParcelState)
    aftercare: AftercareState = Field(default_factory=AftercareState)
    payment: PaymentState = Field(default_factory=PaymentState)
    cancellation: CancellationState = Field(default_factory=CancellationState)

    def parts(self) -> list[Part]:
        return [getattr(self, name) for name in type(self).model_fields]

    def carry(self) -> CarriedState:
        """What this run hands to the next: the carried fields of every part, laid flat.
        Fails (validation) before the order has shipped: only then may a run continue."""
        return CarriedState.model_validate(
            {
                name: getattr(part, name)
                for part in self.parts()
                for name in type(part).carried_fields()
            }
        )

    @classmethod
    def resume(cls, carried: CarriedState) -> OrderState:
        """The state a continued run starts from: the carried fields back in their parts
        (copied: the parts are changed in place, the input is not), the rest fresh."""
        state = cls()
        for part in state.parts():
            for name in type(part).carried_fields():
                setattr(part, name, copy.copy(getattr(carried, name)))
        # The parcel was with the carrier when the last run continued.
        state.parcel.shipping_started = True
        state.payment.captured = True
        return state


def part_types() -> list[type[Part]]:
    types: list[type[Part]] = []
    for info in OrderState.model_fields.values():
        assert isinstance(info.annotation, type) and issubclass(info.annotation, Part)
        types.append(info.annotation)
    return types


def check_carried_state(parts: list[type[Part]]) -> None:
    """Raise when the carried fields of `parts` are not, each once, the fields of
    `CarriedState`."""
    carried = [name for part in parts for name in part.carried_fields()]
    declared = list(CarriedState.model_fields)
    twice = sorted({name for name in carried if carried.count(name) > 1})
    if twice or set(carried) != set(declared):
        raise TypeError(
            "the carried fields of the order state and CarriedState disagree: "
            f"carried by two parts {twice}, not in CarriedState "
            f"{sorted(set(carried) - set(declared))}, in no part "
            f"{sorted(set(declared) - set(carried))}"
        )


check_carried_state(part_types())
