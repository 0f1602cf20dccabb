"""An in-memory shop behind the order workflow: one stub per real activity, registered under
the real activity name, recording every call in order.

The stubs take and return the real activities' types, so the workflow cannot tell them from
the PostgreSQL/HTTP ones. What they do is the least that makes the workflow's behaviour
visible:
- every call is recorded (`calls`), so a test asserts what the workflow asked for and in
  which order;
- the effects the cancel undoes are kept as a stack (`_undo`), so `cancel_order` undoes
  them latest first, as the real one does in one transaction, and `undone` shows exactly
  which steps the workflow had carried out before it cancelled;
- event keys are claimed as the real activities claim them (`delivery.booking_refused.N`,
  `tracking.lost.N`, ...): a second effect under a key already claimed is a collision, and
  the people it should have told never hear of it (`told` stays short), as in production;
- knobs (plain attributes) stand for the outside world: a flagged risk, stock short, the
  carriers refusing the next N bookings, the carrier reporting the parcel lost, and gates
  that hold an activity until the test lets it go.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from orderflow.models import (
    CancelResult,
    Classification,
    Order,
    OrderStatus,
    OrderWorkflowInput,
    ReservationOutcome,
    RiskAssessment,
    RiskReason,
    ShipmentBooking,
    TrackingUpdate,
)
from orderflow.models.activity_names import UNPROCESSABLE, ActivityName
from orderflow.models.messages import FeedbackReceipt, LostParcelOutcome, ReviewReceipt
from orderflow.models.payments import (
    CaptureInput,
    CaptureResult,
    ReauthorizeResult,
    RefundInput,
    RefundResult,
    VoidResult,
)
from orderflow.models.steps import (
    AssessRiskInput,
    BackorderReminderInput,
    BookShipmentInput,
    CancelInput,
    CompleteInput,
    FeedbackInput,
    FollowUpInput,
    FollowUpResult,
    LostParcelInput,
    LostParcelResolutionInput,
    OrderRef,
    PickTaskInput,
    ProductReviewInput,
    ReleaseHold,
    ReleaseMoveInput,
    ReplacementOutcome,
    ReviewOutcomeInput,
    ShipmentHoldInput,
    TrackingInput,
    UnprocessableInput,
    WarehouseReportInput,
)
from policies.feedback_routing import department_for

# The undo of each effect, named as the real cancel's events are.
REVIEW_TASK_CLOSED = "review_task_closed"
BACKORDER_WITHDRAWN = "backorder_withdrawn"
STOCK_RELEASED = "stock_released"
PICK_TASK_CANCELLED = "pick_task_cancelled"
PAYMENT_REFUNDED = "payment_refunded"


@dataclass(frozen=True)
class Call:
    """One activity call as the workflow made it, and the run that made it."""

    name: ActivityName
    arg: Any
    run_id: str | None


@dataclass
class Gate:
    """Holds one activity until the test opens it: `entered` is set when it is reached."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def open(self) -> None:
        self.opened.set()


class FakeShop:
    """The world of one test: its knobs are set before or during the test."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        # --- knobs
        self.flagged = False
        self.risk_score = 12.0
        # One of `Classification.order_type`'s literals (checked when the stub answers).
        self.order_type: Any = "normal"
        self.department = "sales"
        # sku -> units short; reserve_stock fails while this is not empty
        self.shortages: dict[str, int] = {}
        self.replacement_shortages: dict[str, int] = {}
        # the next N bookings are refused for good (no carrier takes the parcel)
        self.refuse_bookings = 0
        self.carrier = "dhl"
        self.transit = timedelta(days=2)
        self.packed_weight_kg = 1.25
        # what the carrier's status query says at a follow-up
        self.carrier_status: str | None = None
        self.carrier_events: list[TrackingUpdate] = []
        self.gates: dict[ActivityName, Gate] = {}
        # activity -> the message it fails with for good (non-retryable, as a real local
        # activity fails on data it can never process: activities/failures.py)
        self.unprocessable: dict[ActivityName, str] = {}
        # a pre-order's release as the catalogue has it (None: nothing to wait for)
        self.release_at: datetime | None = None
        # the payment service provider: the next N captures are declined; renewals of an
        # authorisation are declined, or last this long from when they were asked
        self.refuse_captures = 0
        self.refuse_renewals = False
        self.renewal_lasts = timedelta(days=7)
        # --- what happened
        self.orders: dict[str, Order] = {}
        self.undone: list[str] = []
        self.refunds: list[str] = []
        self.told: list[str] = []
        self.collisions: list[str] = []
        self._undo: list[str] = []
        self._claimed: set[str] = set()
        self._cancel_result: CancelResult | None = None

    # ------------------------------------------------------------------ reading the record
    def names(self) -> list[ActivityName]:
        return [call.name for call in self.calls]

    def inputs(self, name: ActivityName) -> list[Any]:
        return [call.arg for call in self.calls if call.name == name]

    def runs_of(self, name: ActivityName) -> list[str | None]:
        """The run that made each call of `name`."""
        return [call.run_id for call in self.calls if call.name == name]

    def count(self, name: ActivityName) -> int:
        return len(self.inputs(name))

    def gate(self, name: ActivityName) -> Gate:
        """Hold every later call of `name` until the returned gate is opened."""
        self.gates[name] = Gate()
        return self.gates[name]

    def activities(self) -> list[Any]:
        return [
            self.record_order,
            self.classify_order,
            self.assess_risk,
            self.escalate_review,
            self.record_review_decision,
            self.reserve_stock,
            self.remind_backorder,
            self.open_pick_task,
            self.notify_pick_overdue,
            self.record_picked,
            self.record_packed,
            self.book_shipment,
            self.record_tracking,
            self.follow_up_delivery,
            self.complete_order,
            self.cancel_order,
            self.hold_shipment,
            self.open_lost_parcel_case,
            self.take_replacement_stock,
            self.refund_lost_parcel,
            self.record_feedback,
            self.record_product_review,
            self.reject_unprocessable,
            self.hold_for_release,
            self.move_release,
            self.release_pre_order,
            self.capture_payment,
            self.void_payment,
            self.refund_payment,
            self.reauthorize_payment,
        ]

    # ------------------------------------------------------------------ internals
    async def _call(self, name: ActivityName, arg: BaseModel) -> None:
        self.calls.append(Call(name, arg, activity.info().workflow_run_id))
        gate = self.gates.get(name)
        if gate is not None:
            gate.entered.set()
            await gate.opened.wait()
        if name in self.unprocessable:
            raise ApplicationError(self.unprocessable[name], type=UNPROCESSABLE, non_retryable=True)

    def _claim(self, key: str) -> bool:
        """Claim an event key as `events.record_event` does: False when it was claimed."""
        if key in self._claimed:
            self.collisions.append(key)
            return False
        self._claimed.add(key)
        return True

    def _tell(self, key: str, whom: str, what: str) -> None:
        # Like the real activities: the notice goes out only with the effect's first claim.
        if self._claim(key):
            self.told.append(f"{whom}: {what}")

    def _total(self, order_id: str) -> Decimal:
        return self.orders[order_id].total

    def _undo_later(self, undo: str) -> None:
        if undo not in self._undo:
            self._undo.append(undo)

    def _drop(self, undo: str) -> None:
        if undo in self._undo:
            self._undo.remove(undo)

    # ------------------------------------------------------------------ steps 1 to 5
    @activity.defn(name=ActivityName.RECORD_ORDER)
    async def record_order(self, data: OrderWorkflowInput) -> None:
        await self._call(ActivityName.RECORD_ORDER, data)
        self.orders[data.order.order_id] = data.order

    @activity.defn(name=ActivityName.CLASSIFY_ORDER)
    async def classify_order(self, order: Order) -> Classification:
        await self._call(ActivityName.CLASSIFY_ORDER, order)
        return Classification(
            order_type=self.order_type, department=self.department, rule="fake shop"
        )

    @activity.defn(name=ActivityName.ASSESS_RISK)
    async def assess_risk(self, data: AssessRiskInput) -> RiskAssessment:
        await self._call(ActivityName.ASSESS_RISK, data)
        if self.flagged:
            self._undo_later(REVIEW_TASK_CLOSED)
        return RiskAssessment(
            score=self.risk_score,
            flagged=self.flagged,
            reasons=[RiskReason(code="fake", message="set by the test", points=self.risk_score)],
        )

    @activity.defn(name=ActivityName.ESCALATE_REVIEW)
    async def escalate_review(self, ref: OrderRef) -> None:
        await self._call(ActivityName.ESCALATE_REVIEW, ref)
        self._tell("review.escalated", "supervisor", "review overdue")

    @activity.defn(name=ActivityName.RECORD_REVIEW_DECISION)
    async def record_review_decision(self, data: ReviewOutcomeInput) -> None:
        await self._call(ActivityName.RECORD_REVIEW_DECISION, data)
        self._drop(REVIEW_TASK_CLOSED)
        if data.decision.decision == "reject" and self._claim("review.decided"):
            self.refunds.append(data.decision.note or "rejected")

    @activity.defn(name=ActivityName.RESERVE_STOCK)
    async def reserve_stock(self, order: Order) -> ReservationOutcome:
        await self._call(ActivityName.RESERVE_STOCK, order)
        if self.shortages:
            self._undo_later(BACKORDER_WITHDRAWN)
            return ReservationOutcome(reserved=False, shortages=dict(self.shortages))
        self._drop(BACKORDER_WITHDRAWN)
        self._undo_later(STOCK_RELEASED)
        return ReservationOutcome(reserved=True)

    @activity.defn(name=ActivityName.REMIND_BACKORDER)
    async def remind_backorder(self, data: BackorderReminderInput) -> None:
        await self._call(ActivityName.REMIND_BACKORDER, data)
        self._tell(f"inventory.reminder.{data.reminder_no}", "customer", "still backordered")

    @activity.defn(name=ActivityName.OPEN_PICK_TASK)
    async def open_pick_task(self, data: PickTaskInput) -> None:
        await self._call(ActivityName.OPEN_PICK_TASK, data)
        self._undo_later(PICK_TASK_CANCELLED)

    @activity.defn(name=ActivityName.NOTIFY_PICK_OVERDUE)
    async def notify_pick_overdue(self, ref: OrderRef) -> None:
        await self._call(ActivityName.NOTIFY_PICK_OVERDUE, ref)
        self._tell("picking.overdue", "warehouse", "pick task overdue")

    @activity.defn(name=ActivityName.RECORD_PICKED)
    async def record_picked(self, data: WarehouseReportInput) -> None:
        await self._call(ActivityName.RECORD_PICKED, data)

    @activity.defn(name=ActivityName.RECORD_PACKED)
    async def record_packed(self, data: WarehouseReportInput) -> float:
        await self._call(ActivityName.RECORD_PACKED, data)
        return data.weight_kg if data.weight_kg is not None else self.packed_weight_kg

    # ------------------------------------------------------------------ steps 6 to 8
    @activity.defn(name=ActivityName.BOOK_SHIPMENT)
    async def book_shipment(self, data: BookShipmentInput) -> ShipmentBooking:
        await self._call(ActivityName.BOOK_SHIPMENT, data)
        if self.refuse_bookings > 0:
            self.refuse_bookings -= 1
            # As the real activity: a carrier's definite "no" is not retried.
            raise ApplicationError(
                "no carrier takes the parcel", type="NoCarrierAvailable", non_retryable=True
            )
        order_id = data.order.order_id
        # The pick task is done and the stock leaves with the parcel: nothing left to undo.
        self._undo.clear()
        return ShipmentBooking(
            carrier=self.carrier,
            tracking_number=tracking_number(order_id, data.reship_no),
            delivery_note=f"DN-{order_id}-{data.reship_no}",
            # From the workflow's own time, so the follow-up timer is predictable.
            expected_delivery=data.requested_at + self.transit,
            choice_reason="fake shop",
            cost=Decimal("4.90"),
        )

    @activity.defn(name=ActivityName.RECORD_TRACKING)
    async def record_tracking(self, data: TrackingInput) -> None:
        await self._call(ActivityName.RECORD_TRACKING, data)
        self._claim(f"tracking.{data.update.event_id}")

    @activity.defn(name=ActivityName.FOLLOW_UP_DELIVERY)
    async def follow_up_delivery(self, data: FollowUpInput) -> FollowUpResult:
        await self._call(ActivityName.FOLLOW_UP_DELIVERY, data)
        return FollowUpResult(carrier_status=self.carrier_status, events=list(self.carrier_events))

    @activity.defn(name=ActivityName.COMPLETE_ORDER)
    async def complete_order(self, data: CompleteInput) -> None:
        await self._call(ActivityName.COMPLETE_ORDER, data)
        self._claim("completion.completed")

    @activity.defn(name=ActivityName.CANCEL_ORDER)
    async def cancel_order(self, data: CancelInput) -> CancelResult:
        await self._call(ActivityName.CANCEL_ORDER, data)
        if self._cancel_result is not None:
            # A repeated cancel changes nothing and answers the same (`cancellation.cancelled`).
            return self._cancel_result
        released = len(self.orders[data.order_id].items) if STOCK_RELEASED in self._undo else 0
        # Latest step first, then the payment: the order of the real cancel's transaction.
        self.undone = [*reversed(self._undo), PAYMENT_REFUNDED]
        self._undo.clear()
        self.refunds.append(f"cancelled: {data.request.reason}")
        self._cancel_result = CancelResult(
            order_id=data.order_id,
            status=OrderStatus.CANCELLED,
            refunded=self._total(data.order_id),
            released_lines=released,
        )
        return self._cancel_result

    # ------------------------------------------------------------------ pre-orders
    @activity.defn(name=ActivityName.HOLD_FOR_RELEASE)
    async def hold_for_release(self, order: Order) -> ReleaseHold:
        await self._call(ActivityName.HOLD_FOR_RELEASE, order)
        if self.release_at is not None:
            self._tell("pre_order.waiting", "customer", "pre-order waits for the release")
        return ReleaseHold(release_at=self.release_at)

    @activity.defn(name=ActivityName.MOVE_RELEASE)
    async def move_release(self, data: ReleaseMoveInput) -> ReleaseHold:
        await self._call(ActivityName.MOVE_RELEASE, data)
        self._tell(f"pre_order.moved.{data.move_no}", "customer", "release moved")
        return ReleaseHold(release_at=self.release_at)

    @activity.defn(name=ActivityName.RELEASE_PRE_ORDER)
    async def release_pre_order(self, ref: OrderRef) -> None:
        await self._call(ActivityName.RELEASE_PRE_ORDER, ref)

    # ------------------------------------------------------------------ the PSP
    @activity.defn(name=ActivityName.CAPTURE_PAYMENT)
    async def capture_payment(self, data: CaptureInput) -> CaptureResult:
        await self._call(ActivityName.CAPTURE_PAYMENT, data)
        key = f"capture-{data.order_id}-{data.sequence}"
        if self.refuse_captures > 0:
            self.refuse_captures -= 1
            return CaptureResult(ok=False, status="refused", code="declined", idempotency_key=key)
        return CaptureResult(ok=True, status="succeeded", amount=data.amount, idempotency_key=key)

    @activity.defn(name=ActivityName.VOID_PAYMENT)
    async def void_payment(self, order_id: str) -> VoidResult:
        self.calls.append(
            Call(ActivityName.VOID_PAYMENT, order_id, activity.info().workflow_run_id)
        )
        return VoidResult(ok=True, status="succeeded", idempotency_key=f"void-{order_id}-1")

    @activity.defn(name=ActivityName.REFUND_PAYMENT)
    async def refund_payment(self, data: RefundInput) -> RefundResult:
        await self._call(ActivityName.REFUND_PAYMENT, data)
        return RefundResult(ok=True, status="pending", amount=self._total(data.order_id))

    @activity.defn(name=ActivityName.REAUTHORIZE_PAYMENT)
    async def reauthorize_payment(self, order_id: str) -> ReauthorizeResult:
        info = activity.info()
        self.calls.append(Call(ActivityName.REAUTHORIZE_PAYMENT, order_id, info.workflow_run_id))
        if self.refuse_renewals:
            return ReauthorizeResult(ok=False, status="refused", code="authorization_expired")
        # From the (skipped) time of the server that scheduled it, as the workflow sees time.
        return ReauthorizeResult(
            ok=True,
            status="succeeded",
            authorization_expires_at=info.current_attempt_scheduled_time + self.renewal_lasts,
        )

    @activity.defn(name=ActivityName.REJECT_UNPROCESSABLE)
    async def reject_unprocessable(self, data: UnprocessableInput) -> None:
        await self._call(ActivityName.REJECT_UNPROCESSABLE, data)
        if self._claim("unprocessable.rejected"):
            # Undone and refunded as a cancel undoes; customer service hears of it.
            self.undone = [*reversed(self._undo), PAYMENT_REFUNDED]
            self._undo.clear()
            self.refunds.append(data.reason)
            self.told.append(f"customer_service: {data.reason}")

    @activity.defn(name=ActivityName.HOLD_SHIPMENT)
    async def hold_shipment(self, data: ShipmentHoldInput) -> None:
        await self._call(ActivityName.HOLD_SHIPMENT, data)
        self._tell(
            f"delivery.booking_refused.{data.attempt}",
            "logistics",
            f"booking refused (attempt {data.attempt})",
        )

    @activity.defn(name=ActivityName.OPEN_LOST_PARCEL_CASE)
    async def open_lost_parcel_case(self, data: LostParcelInput) -> None:
        await self._call(ActivityName.OPEN_LOST_PARCEL_CASE, data)
        self._tell(f"tracking.lost.{data.case_no}", "logistics", f"lost parcel case {data.case_no}")

    @activity.defn(name=ActivityName.TAKE_REPLACEMENT_STOCK)
    async def take_replacement_stock(self, data: LostParcelResolutionInput) -> ReplacementOutcome:
        await self._call(ActivityName.TAKE_REPLACEMENT_STOCK, data)
        if self.replacement_shortages:
            return ReplacementOutcome(taken=False, shortages=dict(self.replacement_shortages))
        return ReplacementOutcome(taken=True)

    @activity.defn(name=ActivityName.REFUND_LOST_PARCEL)
    async def refund_lost_parcel(self, data: LostParcelResolutionInput) -> LostParcelOutcome:
        await self._call(ActivityName.REFUND_LOST_PARCEL, data)
        if self._claim(f"tracking.lost.{data.case_no}.refunded"):
            self.refunds.append("parcel lost in transit")
        return LostParcelOutcome(
            order_id=data.order_id,
            action="refund",
            status=OrderStatus.CANCELLED,
            refunded=self._total(data.order_id),
        )

    # ------------------------------------------------------------------ any step
    @activity.defn(name=ActivityName.RECORD_FEEDBACK)
    async def record_feedback(self, data: FeedbackInput) -> FeedbackReceipt:
        await self._call(ActivityName.RECORD_FEEDBACK, data)
        return FeedbackReceipt(
            ticket_id=data.ticket_id,
            order_id=data.order_id,
            category=data.request.category,
            department=department_for(data.request.category),
            holds_completion=data.holds_completion,
            created=self._claim(f"feedback.{data.request.request_key}"),
        )

    @activity.defn(name=ActivityName.RECORD_PRODUCT_REVIEW)
    async def record_product_review(self, data: ProductReviewInput) -> ReviewReceipt:
        await self._call(ActivityName.RECORD_PRODUCT_REVIEW, data)
        return ReviewReceipt(
            order_id=data.order_id,
            rating=data.review.rating,
            stored_at=activity.info().current_attempt_scheduled_time,
        )


def tracking_number(order_id: str, reship_no: int = 0) -> str:
    """The tracking number the fake carrier gives the order's n-th parcel."""
    return f"TRK-{order_id}-{reship_no}"
