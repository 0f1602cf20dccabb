"""The order workflow: one durable workflow per order, id `order-<order_id>`, running the
eight steps of the order process and waiting for people only where a person is needed.

Deterministic orchestration only: every effect is an activity (called by name), every wait
a timer or a condition on messages, every duration from the `OrderPolicy` in the input.
What the workflow knows is kept by step in `OrderState` (workflows/order_state.py), which
also builds what a run hands to the next when it continues as new.

Decisions of steps 6 to 8 and the cancellation:
- A cancel is accepted until the parcel is handed to the carrier (the booking starts), then
  refused. A booking the carriers refuse for good (no carrier takes the parcel) does not fail
  the order: it waits at PACKED (`awaiting` "carrier_booking") until logistics retries
  (`retry_booking`) or someone cancels.
- A parcel the carrier reports LOST (webhook or status query), or still missing after
  `followup_max_attempts` follow-ups, waits ("lost_parcel_resolution") for logistics'
  `resolve_lost_parcel`: "reship" takes replacement goods and books a new parcel (its own
  idempotency key), "refund" refunds the payment and ends the order CANCELLED (the order
  never reached the customer; the timeline says `resolution: refund`). A lost parcel that is
  delivered after all completes the order as usual.
- After delivery the order completes after `quiet_period`, at once when the customer
  confirms receipt (`confirm_receipt`); a delivery or product complaint made in the quiet
  period holds completion until its department resolves the ticket (`feedback_resolved`).
- Reviews (`submit_review`, one per order) are taken from completion until `review_window`
  ends; feedback (`submit_feedback`) from placement until the process ends. The process ends
  when the window closes and every handler has finished.
- While the parcel is under way, a run whose history grows past the policy's
  `continue_as_new_history_length` (or that the server finds large) continues as new with
  its state (`CarriedState`).
- A local activity that fails for good on the order's data (activities/failures.py: a value
  that can never be stored, a model that does not validate) ends the order REJECTED with
  "cannot be processed: ..." as the reason, undone and refunded like a cancel, and puts it in
  customer service's queue, instead of retrying it forever.
Every change to the commands a running order issues is behind `workflow.patched`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.call_options import DB_RETRY, DB_TIMEOUT, SERVICE_RETRY, SERVICE_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from orderflow import search_attributes as sa
    from orderflow.models import (
        SHIPPED_OR_LATER,
        STEP_OF_STATUS,
        TERMINAL_STATUSES,
        Awaiting,
        CancelRequest,
        CancelResult,
        Classification,
        Order,
        OrderStatus,
        OrderView,
        OrderWorkflowInput,
        PackedReport,
        PickedReport,
        ReservationOutcome,
        ReviewDecision,
        RiskAssessment,
        ShipmentBooking,
        StockReceived,
        TimelineEntry,
        TrackingUpdate,
    )
    from orderflow.models.activity_names import PAYMENT_REJECTED, UNPROCESSABLE, ActivityName
    from orderflow.models.marketplace import (
        MarketplaceCancellationPush,
        MarketplaceShipmentPush,
    )
    from orderflow.models.messages import (
        CaptureRetry,
        CarriedState,
        FeedbackReceipt,
        FeedbackRequest,
        FeedbackResolved,
        LostParcelOutcome,
        LostParcelResolution,
        ProductReview,
        RebookRequest,
        ReceiptConfirmation,
        ReleaseDateChange,
        ReviewReceipt,
    )
    from orderflow.models.payments import (
        CaptureInput,
        CaptureResult,
        PaymentResult,
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
    from policies.feedback_routing import holds_completion

    # Pure models: shared with the sandbox rather than rebuilt for every workflow run.
    from workflows.order_state import OrderState

# A carrier's definite "no" (no carrier takes the parcel, or the booking is refused): the
# parcel waits at PACKED for logistics instead of failing the order.
_BOOKING_REFUSALS = ("NoCarrierAvailable", "CarrierRefused")
# Pushes to a marketplace: retried, less and less often, until the marketplace takes them.
_MARKETPLACE_CALL: dict[str, Any] = {
    "start_to_close_timeout": SERVICE_TIMEOUT,
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=5),
    ),
}
# Who a cancellation from the marketplace's own feed is requested by: it is not told back.
MARKETPLACE_ACTOR = "marketplace"
# Calls to the PSP: regular activities, retried while it cannot be reached.
_PSP_CALL: dict[str, Any] = {
    "start_to_close_timeout": SERVICE_TIMEOUT,
    "retry_policy": SERVICE_RETRY,
}

# Changes to the commands a running order issues, each behind its patch so that histories
# recorded before replay as they ran (workflow.patched is False for them).
PATCH_BOOKING_HOLD = "booking-refusal-holds-at-packed"
PATCH_LOST_PARCEL = "lost-parcel-resolution"
PATCH_AFTERCARE = "receipt-complaints-review-window"
PATCH_CONTINUE_AS_NEW = "continue-as-new-after-shipment"
PATCH_OFFER_ON_TIME = "backorder-cancellation-offer-on-time"
PATCH_CARRY_BOOKING_HOLDS = "continue-as-new-carries-booking-holds"
PATCH_UNPROCESSABLE = "unprocessable-order-rejected"
PATCH_PSP_PAYMENTS = "payments-through-psp"
PATCH_PRE_ORDER = "pre-order-waits-for-release"


class OrderCancelled(Exception):
    """Raised inside the run loop when an accepted cancel must undo the order."""


@workflow.defn
class OrderWorkflow:
    @workflow.init
    def __init__(self, data: OrderWorkflowInput) -> None:
        self._order: Order = data.order
        self._policy = data.policy
        self._received_at = data.received_at
        self._state = OrderState.resume(data.carried) if data.carried else OrderState()
        self._last_local: str | None = None
        # The authorisation's renewals, beside the steps while the order waits.
        self._renewals: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- run
    @workflow.run
    async def run(self, data: OrderWorkflowInput) -> OrderView:
        if data.carried is not None:
            # A continued run: the parcel is with the carrier; carry on from there.
            await self._unless_unprocessable(self._after_shipment())
        else:
            # Decided once, for the whole order: orders begun before keep the old way. An
            # exchange's replacement was paid for with its original order: nothing at the PSP.
            self._state.payment.through_psp = (
                workflow.patched(PATCH_PSP_PAYMENTS) and data.order.exchange_of is None
            )
            self._take_checkout_payment()
            await self._unless_unprocessable(self._steps(data))
        # From here on no new feedback or review is taken; those in flight finish first.
        self._state.aftercare.closing = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    async def _steps(self, data: OrderWorkflowInput) -> None:
        await self._local(ActivityName.RECORD_ORDER, data)
        self._set_status(OrderStatus.RECEIVED)
        self._watch_authorization()
        try:
            await self._classify()
            if await self._review():
                await self._wait_for_release()
                await self._reserve_stock()
                await self._pick_and_pack()
                await self._ship()
                await self._after_shipment()
        except OrderCancelled:
            await self._undo()

    async def _unless_unprocessable(self, steps: Awaitable[None]) -> None:
        """Run `steps`; an activity that failed for good on the order's data (it would never
        pass, however often retried) rejects the order with the reason (patched)."""
        try:
            await steps
        except (ActivityError, ApplicationError) as err:
            # A local activity's failure arrives as its ApplicationError itself, a regular
            # one's wrapped in an ActivityError.
            cause = err.cause if isinstance(err, ActivityError) else err
            if not (
                isinstance(cause, ApplicationError)
                and cause.type == UNPROCESSABLE
                and workflow.patched(PATCH_UNPROCESSABLE)
            ):
                raise
            activity = err.activity_type if isinstance(err, ActivityError) else None
            await self._reject_unprocessable(activity or self._last_local or "", cause.message)

    async def _reject_unprocessable(self, activity: str, message: str) -> None:
        reason = f"cannot be processed: {message}"
        self._set_awaiting(None)
        await self._local(
            ActivityName.REJECT_UNPROCESSABLE,
            UnprocessableInput(
                order_id=self._order.order_id,
                step=self._state.progress.current_step(),
                activity=activity,
                reason=reason,
            ),
        )
        recorded = self._state.progress.status is not None
        self._set_status(OrderStatus.REJECTED, reason=reason)
        if recorded:
            # An order step 1 never recorded has no payment on record to settle.
            await self._settle_payment(reason)
            await self._tell_marketplace_cancelled("the shop cannot process the order")

    # ---------------------------------------------------------------- steps
    async def _classify(self) -> None:
        result: Classification = await self._local(
            ActivityName.CLASSIFY_ORDER, self._order, result_type=Classification
        )
        self._state.review.classification = result
        workflow.upsert_search_attributes(
            [sa.ORDER_TYPE.value_set(result.order_type), sa.DEPARTMENT.value_set(result.department)]
        )
        self._set_status(OrderStatus.CLASSIFIED, rule=result.rule)
        self._raise_if_cancelled()

    async def _review(self) -> bool:
        """Step 3; True when the order may go on."""
        review = self._state.review
        assessment: RiskAssessment = await self._local(
            ActivityName.ASSESS_RISK,
            AssessRiskInput(
                order=self._order,
                review_sla=self._policy.review_sla,
                review_deadline=self._policy.review_deadline,
            ),
            result_type=RiskAssessment,
        )
        review.assessment = assessment
        workflow.upsert_search_attributes(
            [sa.RISK_SCORE.value_set(assessment.score), sa.FLAGGED.value_set(assessment.flagged)]
        )
        if not assessment.flagged:
            self._set_status(OrderStatus.APPROVED, auto=True)
            self._raise_if_cancelled()
            return True

        self._set_status(OrderStatus.PENDING_REVIEW, score=assessment.score)
        self._set_awaiting(Awaiting.REVIEW_DECISION)
        timed_out = False
        if not await self._wait(lambda: review.decision is not None, self._policy.review_sla):
            await self._local(ActivityName.ESCALATE_REVIEW, OrderRef(order_id=self._order.order_id))
            self._note("review escalated")
            remaining = self._policy.review_deadline - self._policy.review_sla
            if not await self._wait(lambda: review.decision is not None, remaining):
                timed_out = True
                review.decision = ReviewDecision(
                    decision="reject", reviewer="system", note="review_timeout"
                )
        self._set_awaiting(None)
        decision = review.decision
        assert decision is not None
        await self._local(
            ActivityName.RECORD_REVIEW_DECISION,
            ReviewOutcomeInput(
                order_id=self._order.order_id, decision=decision, timed_out=timed_out
            ),
        )
        approved = decision.decision == "approve"
        self._set_status(
            OrderStatus.APPROVED if approved else OrderStatus.REJECTED,
            actor=decision.reviewer,
            note=decision.note,
        )
        review.recorded = True
        if approved:
            self._raise_if_cancelled()
        else:
            await self._settle_payment(f"rejected: {decision.note or 'review'}")
            await self._tell_marketplace_cancelled("rejected by the shop")
        return approved

    async def _wait_for_release(self) -> None:
        """A pre-order waits, without reserving, until its pre-sale products are released
        (a durable timer, moved by purchasing's `move_release`); a cancel ends the wait."""
        classification = self._state.review.classification
        if classification is None or classification.order_type != "pre_sale":
            return
        if not workflow.patched(PATCH_PRE_ORDER):
            return
        stock = self._state.stock
        hold: ReleaseHold = await self._local(
            ActivityName.HOLD_FOR_RELEASE, self._order, result_type=ReleaseHold
        )
        if hold.release_at is None or hold.release_at <= workflow.now():
            return
        stock.release_at = hold.release_at
        self._note("pre-order waits for the release", release_at=hold.release_at.isoformat())
        self._set_awaiting(Awaiting.RELEASE)
        while True:
            assert stock.release_at is not None

            def moved(seen: int = stock.release_moves) -> bool:
                return stock.release_moves > seen

            if not await self._wait(moved, stock.release_at - workflow.now()):
                break
            # Moved: the new date is set by the Update; wait on for it.
        self._set_awaiting(None)
        await self._local(ActivityName.RELEASE_PRE_ORDER, OrderRef(order_id=self._order.order_id))
        self._note("released")

    async def _reserve_stock(self) -> None:
        stock = self._state.stock
        reminders = 0
        waited = timedelta(0)
        while True:
            seen_signals = stock.signals
            outcome: ReservationOutcome = await self._local(
                ActivityName.RESERVE_STOCK, self._order, result_type=ReservationOutcome
            )
            if outcome.reserved:
                break
            if self._state.progress.status != OrderStatus.BACKORDERED:
                self._set_status(OrderStatus.BACKORDERED, shortages=outcome.shortages)
            self._set_awaiting(Awaiting.STOCK)
            interval = self._policy.backorder_reminder_interval
            until_offer = self._policy.backorder_cancel_offer_after - waited
            if timedelta(0) < until_offer < interval and workflow.patched(PATCH_OFFER_ON_TIME):
                # The cancellation offer falls due before the next reminder: make it on time.
                interval = until_offer

            def stock_arrived(seen: int = seen_signals) -> bool:
                return stock.signals > seen

            if await self._wait(stock_arrived, interval):
                continue
            waited += interval
            reminders += 1
            await self._local(
                ActivityName.REMIND_BACKORDER,
                BackorderReminderInput(
                    order_id=self._order.order_id,
                    reminder_no=reminders,
                    offer_cancellation=waited >= self._policy.backorder_cancel_offer_after,
                ),
            )
        self._set_awaiting(None)
        self._set_status(OrderStatus.RESERVED)
        self._raise_if_cancelled()

    async def _pick_and_pack(self) -> None:
        warehouse = self._state.warehouse
        order_id = self._order.order_id
        await self._local(
            ActivityName.OPEN_PICK_TASK,
            PickTaskInput(order_id=order_id, pick_sla=self._policy.pick_sla),
        )
        self._set_status(OrderStatus.PICKING)
        self._raise_if_cancelled()
        if self._policy.auto_warehouse:
            await self._sleep(self._policy.auto_pick_delay)
            warehouse.picked = warehouse.picked or PickedReport(by="auto-warehouse")
        else:
            self._set_awaiting(Awaiting.PICKED)
            if not await self._wait(lambda: warehouse.picked is not None, self._policy.pick_sla):
                await self._local(ActivityName.NOTIFY_PICK_OVERDUE, OrderRef(order_id=order_id))
                await self._wait(lambda: warehouse.picked is not None, None)
        picked = warehouse.picked
        assert picked is not None
        await self._local(
            ActivityName.RECORD_PICKED, WarehouseReportInput(order_id=order_id, by=picked.by)
        )
        self._note("picked", actor=picked.by)
        warehouse.picked_recorded = True
        self._raise_if_cancelled()

        weight: float | None
        if self._policy.auto_warehouse:
            await self._sleep(self._policy.auto_pack_delay)
            by, weight = "auto-warehouse", None
        else:
            self._set_awaiting(Awaiting.PACKED)
            await self._wait(lambda: warehouse.packed is not None, None)
            assert warehouse.packed is not None
            by, weight = warehouse.packed.by, warehouse.packed.weight_kg
        self._set_awaiting(None)
        measured: float = await self._local(
            ActivityName.RECORD_PACKED,
            WarehouseReportInput(order_id=order_id, by=by, weight_kg=weight),
            result_type=float,
        )
        warehouse.packed = PackedReport(weight_kg=measured, by=by)
        self._set_status(OrderStatus.PACKED, weight_kg=measured)
        warehouse.packed_recorded = True
        self._raise_if_cancelled()

    async def _ship(self) -> None:
        if self._state.payment.through_psp and self._order.payment.status == "authorized":
            await self._capture_payment()
        booking = await self._book(reship_no=0)
        self._state.parcel.booking = booking
        self._set_status(
            OrderStatus.SHIPPED, carrier=booking.carrier, tracking_number=booking.tracking_number
        )
        await self._tell_marketplace_shipped(booking, reship_no=0)

    async def _book(self, *, reship_no: int) -> ShipmentBooking:
        """Book the parcel with the carrier; a refusal holds it for logistics (patched)."""
        parcel = self._state.parcel
        packed = self._state.warehouse.packed
        assert packed is not None
        while True:
            # From here on a cancel is refused: the parcel is being handed to the carrier.
            parcel.shipping_started = True
            try:
                booking: ShipmentBooking = await workflow.execute_activity(
                    ActivityName.BOOK_SHIPMENT,
                    BookShipmentInput(
                        order=self._order,
                        weight_kg=packed.weight_kg,
                        requested_at=workflow.now(),
                        reship_no=reship_no,
                    ),
                    start_to_close_timeout=SERVICE_TIMEOUT,
                    retry_policy=SERVICE_RETRY,
                    result_type=ShipmentBooking,
                )
            except ActivityError as err:
                cause = err.cause
                if not (
                    isinstance(cause, ApplicationError)
                    and cause.type in _BOOKING_REFUSALS
                    and workflow.patched(PATCH_BOOKING_HOLD)
                ):
                    raise
                await self._hold_shipment(cause.message)
                continue
            parcel.booking_outcomes += 1
            return booking

    async def _hold_shipment(self, reason: str) -> None:
        """No carrier takes the parcel: it waits where it is until logistics asks again."""
        parcel = self._state.parcel
        parcel.booking_holds += 1
        # Nothing is with a carrier: a cancel is possible again (while the order is PACKED).
        parcel.shipping_started = False
        await self._local(
            ActivityName.HOLD_SHIPMENT,
            ShipmentHoldInput(
                order_id=self._order.order_id, attempt=parcel.booking_holds, reason=reason
            ),
        )
        self._note("booking refused", reason=reason)
        parcel.booking_outcomes += 1
        self._set_awaiting(Awaiting.CARRIER_BOOKING)
        seen = parcel.rebook_requests
        # Cancellable only before the first shipment: the cancel validator refuses later.
        await self._wait(lambda: parcel.rebook_requests > seen, None)
        self._set_awaiting(None)

    async def _after_shipment(self) -> None:
        if await self._track_until_delivered():
            await self._complete()

    async def _track_until_delivered(self) -> bool:
        """True once delivered; False when a lost parcel was refunded (the order is closed)."""
        tracking, lost = self._state.tracking, self._state.lost_parcel
        while True:
            booking = self._state.parcel.booking
            assert booking is not None
            if tracking.follow_up_at is None:
                tracking.follow_up_at = booking.expected_delivery + self._policy.delivery_grace
            while True:
                await self._apply_tracking()
                if tracking.delivered:
                    return True
                if lost.lost_reason is not None:
                    break
                await self._continue_as_new_if_long()
                self._set_awaiting(Awaiting.DELIVERY)
                assert tracking.follow_up_at is not None
                timeout = max(tracking.follow_up_at - workflow.now(), timedelta(0))
                if await self._wait(
                    lambda: bool(tracking.tracking_inbox), timeout, cancellable=False
                ):
                    continue
                await self._follow_up()
            outcome = await self._resolve_lost_parcel()
            if outcome != "reshipped":
                return outcome == "delivered"

    async def _follow_up(self) -> None:
        tracking = self._state.tracking
        tracking.follow_up_attempt += 1
        attempt = tracking.follow_up_attempt
        result: FollowUpResult = await workflow.execute_activity(
            ActivityName.FOLLOW_UP_DELIVERY,
            FollowUpInput(
                order_id=self._order.order_id,
                attempt=attempt,
                escalate=attempt >= self._policy.followup_escalate_after,
            ),
            start_to_close_timeout=SERVICE_TIMEOUT,
            retry_policy=SERVICE_RETRY,
            result_type=FollowUpResult,
        )
        self._note("delivery follow-up", attempt=attempt, carrier_status=result.carrier_status)
        tracking.follow_up_at = workflow.now() + self._policy.followup_interval
        if not workflow.patched(PATCH_LOST_PARCEL):
            return
        # Events the carrier lists that never reached the webhook are applied now, once.
        for update in result.events:
            tracking.receive(update)
        if result.carrier_status == "LOST":
            self._state.lost_parcel.lost_reason = "the carrier reports the parcel lost"
        elif attempt >= self._policy.followup_max_attempts:
            self._state.lost_parcel.lost_reason = f"not delivered after {attempt} follow-ups"

    async def _apply_tracking(self) -> None:
        tracking = self._state.tracking
        while tracking.tracking_inbox:
            update = tracking.tracking_inbox.pop(0)
            booking = self._state.parcel.booking
            if booking is None or update.tracking_number != booking.tracking_number:
                self._note("ignored tracking event for another parcel", event_id=update.event_id)
                continue
            await self._local(
                ActivityName.RECORD_TRACKING,
                TrackingInput(order_id=self._order.order_id, update=update),
            )
            if update.status in ("IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"):
                self._set_status(OrderStatus(update.status), event_id=update.event_id)
            else:
                self._note(f"carrier reported {update.status}", event_id=update.event_id)
            if update.status == "DELIVERED":
                tracking.delivered = True
            elif update.status == "LOST" and workflow.patched(PATCH_LOST_PARCEL):
                self._state.lost_parcel.lost_reason = "the carrier reports the parcel lost"

    async def _resolve_lost_parcel(self) -> str:
        """A lost parcel waits for logistics: "reshipped", "refunded", or "delivered" (found)."""
        lost, tracking, parcel = self._state.lost_parcel, self._state.tracking, self._state.parcel
        lost_booking, reason = parcel.booking, lost.lost_reason
        assert lost_booking is not None and reason is not None
        case_no = lost.open_case()
        await self._local(
            ActivityName.OPEN_LOST_PARCEL_CASE,
            LostParcelInput(
                order_id=self._order.order_id,
                case_no=case_no,
                reason=reason,
                carrier=lost_booking.carrier,
                tracking_number=lost_booking.tracking_number,
            ),
        )
        self._note("parcel lost: logistics resolves", reason=reason, case=case_no)
        while True:
            self._set_awaiting(Awaiting.LOST_PARCEL_RESOLUTION)
            await workflow.wait_condition(
                lambda: lost.resolution is not None or bool(tracking.tracking_inbox)
            )
            if lost.resolution is None:
                # The carrier found it after all.
                await self._apply_tracking()
                if tracking.delivered:
                    self._set_awaiting(None)
                    lost.lost_reason = None
                    return "delivered"
                continue
            resolution = lost.resolution
            self._set_awaiting(None)
            base = LostParcelResolutionInput(
                order_id=self._order.order_id, case_no=case_no, resolution=resolution
            )
            if resolution.action == "refund":
                outcome: LostParcelOutcome = await self._local(
                    ActivityName.REFUND_LOST_PARCEL, base, result_type=LostParcelOutcome
                )
                self._set_status(
                    OrderStatus.CANCELLED,
                    actor=resolution.by,
                    resolution="refund",
                    reason=lost.lost_reason,
                    note=resolution.note,
                )
                await self._settle_payment("parcel lost")
                lost.outcome = outcome
                return "refunded"
            reship_no = parcel.reship_no + 1
            taken: ReplacementOutcome = await self._local(
                ActivityName.TAKE_REPLACEMENT_STOCK,
                base.model_copy(update={"reship_no": reship_no}),
                result_type=ReplacementOutcome,
            )
            if not taken.taken:
                short = ", ".join(
                    f"{sku} short by {n}" for sku, n in sorted(taken.shortages.items())
                )
                lost.error = (
                    f"order {self._order.order_id} cannot be reshipped: {short}; "
                    "refund it, or reship once stock is received"
                )
                lost.resolution = None
                continue
            parcel.reship_no = reship_no
            booking = await self._book(reship_no=reship_no)
            parcel.booking = booking
            lost.lost_reason = None
            tracking.next_parcel()
            self._set_status(
                OrderStatus.SHIPPED,
                actor=resolution.by,
                carrier=booking.carrier,
                tracking_number=booking.tracking_number,
                reship=reship_no,
            )
            await self._tell_marketplace_shipped(booking, reship_no=reship_no)
            lost.outcome = LostParcelOutcome(
                order_id=self._order.order_id,
                action="reship",
                status=OrderStatus.SHIPPED,
                carrier=booking.carrier,
                tracking_number=booking.tracking_number,
            )
            return "reshipped"

    async def _complete(self) -> None:
        aftercare = self._state.aftercare
        self._set_awaiting(None)
        if workflow.patched(PATCH_AFTERCARE):
            how = await self._quiet_period()
        else:
            await self._sleep(self._policy.quiet_period)
            how = "delivered"
        aftercare.completing = True
        await self._local(
            ActivityName.COMPLETE_ORDER,
            CompleteInput(order_id=self._order.order_id, how=how),
        )
        self._set_status(OrderStatus.COMPLETED)
        aftercare.completed = True
        if workflow.patched(PATCH_AFTERCARE):
            await self._review_window()

    async def _quiet_period(self) -> str:
        """Wait the quiet period (cut short by the customer's confirmation), then while a
        delivery or product complaint made meanwhile is open. How it completed."""
        aftercare = self._state.aftercare

        def confirmed() -> bool:
            return aftercare.receipt_confirmed is not None

        self._set_awaiting(Awaiting.RECEIPT_CONFIRMATION)
        if self._policy.quiet_period > timedelta(0):
            try:
                await workflow.wait_condition(confirmed, timeout=self._policy.quiet_period)
            except TimeoutError:
                pass
        if not confirmed() and aftercare.holding_tickets:
            self._set_awaiting(Awaiting.COMPLAINT_RESOLUTION)
            self._note(
                "completion held by open complaints", tickets=sorted(aftercare.holding_tickets)
            )
            await workflow.wait_condition(lambda: confirmed() or not aftercare.holding_tickets)
        self._set_awaiting(None)
        return "confirmed_by_customer" if confirmed() else "quiet_period"

    async def _review_window(self) -> None:
        aftercare = self._state.aftercare
        aftercare.review_open = True
        self._set_awaiting(Awaiting.REVIEW)
        if self._policy.review_window > timedelta(0):
            await workflow.sleep(self._policy.review_window)
        aftercare.review_open = False
        self._set_awaiting(None)

    async def _continue_as_new_if_long(self) -> None:
        """Hand the state to a fresh run when this one's history has grown large."""
        info = workflow.info()
        if not (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._policy.continue_as_new_history_length
        ):
            return
        if not workflow.patched(PATCH_CONTINUE_AS_NEW):
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            OrderWorkflowInput(
                order=self._order,
                policy=self._policy,
                received_at=self._received_at,
                carried=self._carry(),
            )
        )

    def _carry(self) -> CarriedState:
        carried = self._state.carry()
        # Runs that continued before the holds were carried numbered later holds from 1 again;
        # they keep doing so on replay.
        holds = carried.booking_holds if workflow.patched(PATCH_CARRY_BOOKING_HOLDS) else 0
        return carried.model_copy(update={"runs": carried.runs + 1, "booking_holds": holds})

    async def _undo(self) -> None:
        cancellation = self._state.cancellation
        request = cancellation.request
        assert request is not None
        self._set_awaiting(None)
        result: CancelResult = await self._local(
            ActivityName.CANCEL_ORDER,
            CancelInput(order_id=self._order.order_id, request=request),
            result_type=CancelResult,
        )
        self._set_status(OrderStatus.CANCELLED, actor=request.requested_by, reason=request.reason)
        # The cancel is answered now; the PSP's part follows (a PSP that is down delays it).
        cancellation.result = result
        await self._settle_payment(f"cancelled: {request.reason}")
        if request.requested_by != MARKETPLACE_ACTOR:
            await self._tell_marketplace_cancelled(request.reason)

    # ---------------------------------------------------------------- payment
    # Only for orders whose payment moves through the PSP (`PaymentState.through_psp`).
    def _take_checkout_payment(self) -> None:
        payment = self._state.payment
        checkout = self._order.payment
        payment.captured = checkout.status == "captured"
        if checkout.status == "authorized":
            payment.authorization_expires_at = checkout.authorization_expires_at

    def _watch_authorization(self) -> None:
        if self._state.payment.awaits_renewal():
            self._renewals = asyncio.create_task(self._keep_authorized())

    async def _keep_authorized(self) -> None:
        """Renew the authorisation `authorization_renewal_margin` before it lapses, for as
        long as the order waits uncaptured; one the PSP will not renew cancels the order."""
        payment = self._state.payment
        margin = self._policy.authorization_renewal_margin

        def over() -> bool:
            return not payment.awaits_renewal() or self._state.cancellation.request is not None

        renewed_at: Any = None
        while not over():
            assert payment.authorization_expires_at is not None
            due = payment.authorization_expires_at - margin
            if renewed_at is not None:
                # A PSP that renews for less than the margin is asked again later, not at once.
                due = max(due, renewed_at + margin / 2)
            wait = due - workflow.now()
            if wait > timedelta(0):
                try:
                    await workflow.wait_condition(over, timeout=wait)
                    return
                except TimeoutError:
                    pass
            if over():
                return
            payment.renewing = True
            try:
                result = await self._at_psp(
                    "reauthorization",
                    workflow.execute_activity(
                        ActivityName.REAUTHORIZE_PAYMENT,
                        self._order.order_id,
                        **_PSP_CALL,
                        result_type=ReauthorizeResult,
                    ),
                )
            finally:
                payment.renewing = False
            renewed = result.authorization_expires_at
            if result.ok and renewed is not None and renewed > payment.authorization_expires_at:
                payment.authorization_expires_at = renewed
                renewed_at = workflow.now()
                self._note("payment authorisation renewed", expires_at=renewed.isoformat())
                continue
            self._note("payment authorisation not renewed", code=result.code)
            if self._cancel_refusal() is None and self._state.cancellation.request is None:
                self._state.cancellation.request = CancelRequest(
                    reason="the payment authorisation expired and could not be renewed",
                    requested_by="system",
                )
            return

    async def _capture_payment(self) -> None:
        """Capture an authorised payment before the parcel is handed over, for the amount
        shipped (the whole order); a capture the PSP refuses holds the parcel at PACKED with
        a task in finance's queue, until finance retries it (`retry_capture`) or cancels."""
        payment = self._state.payment
        while not payment.captured:
            await workflow.wait_condition(lambda: not payment.renewing)
            self._raise_if_cancelled()
            payment.captures += 1
            capture = CaptureInput(
                order_id=self._order.order_id,
                amount=self._order.payment.amount,
                sequence=payment.captures,
            )
            result = await self._at_psp(
                "capture",
                workflow.execute_activity(
                    ActivityName.CAPTURE_PAYMENT, capture, **_PSP_CALL, result_type=CaptureResult
                ),
            )
            payment.capture_outcomes += 1
            if result.ok:
                payment.captured = True
                self._note("payment captured", amount=str(result.amount), psp_id=result.psp_id)
                break
            self._note("payment capture refused: the parcel waits for finance", code=result.code)
            self._set_awaiting(Awaiting.PAYMENT_CAPTURE)

            def retried(seen: int = payment.capture_requests) -> bool:
                return payment.capture_requests > seen

            await self._wait(retried, None)
            self._set_awaiting(None)
        self._raise_if_cancelled()

    async def _settle_payment(self, reason: str) -> None:
        """The order closed before it was paid for in full: an authorisation not captured is
        voided, money captured is refunded. A refusal goes to finance's queue (the activity
        puts it there) and shows on the timeline; the order stays closed."""
        payment = self._state.payment
        payment.settled = True
        checkout = self._order.payment
        if (
            not payment.through_psp
            or checkout.status not in ("authorized", "captured")
            or checkout.method == "marketplace"
        ):
            # A payment that failed at checkout holds nothing at the PSP; a marketplace
            # settles its buyer's money itself (it is told of the cancellation).
            return
        await workflow.wait_condition(lambda: not payment.renewing)
        result: PaymentResult
        if payment.captured:
            refund = RefundInput(order_id=self._order.order_id, reason=reason[:200])
            result = await self._at_psp(
                "refund",
                workflow.execute_activity(
                    ActivityName.REFUND_PAYMENT, refund, **_PSP_CALL, result_type=RefundResult
                ),
            )
            failed = "payment refund failed: in finance's queue"
        else:
            result = await self._at_psp(
                "void",
                workflow.execute_activity(
                    ActivityName.VOID_PAYMENT,
                    self._order.order_id,
                    **_PSP_CALL,
                    result_type=VoidResult,
                ),
            )
            failed = "payment authorisation not released"
        # The PSP's answer is on the order's events either way; the workflow's own timeline
        # names only what a person must act on.
        if not result.ok:
            self._note(failed, code=result.code)

    # ---------------------------------------------------------------- marketplace
    # Only for orders from a marketplace (`Order.marketplace`): none ran before these calls.
    async def _tell_marketplace_shipped(self, booking: ShipmentBooking, *, reship_no: int) -> None:
        order = self._order
        if order.marketplace is None or order.external_order_id is None:
            return
        await workflow.execute_activity(
            ActivityName.PUSH_MARKETPLACE_SHIPMENT,
            MarketplaceShipmentPush(
                code=order.marketplace,
                external_order_id=order.external_order_id,
                order_id=order.order_id,
                carrier=booking.carrier,
                tracking_number=booking.tracking_number,
                shipped_at=workflow.now(),
                reship_no=reship_no,
            ),
            **_MARKETPLACE_CALL,
        )

    async def _tell_marketplace_cancelled(self, reason: str) -> None:
        order = self._order
        if order.marketplace is None or order.external_order_id is None:
            return
        await workflow.execute_activity(
            ActivityName.PUSH_MARKETPLACE_CANCELLATION,
            MarketplaceCancellationPush(
                code=order.marketplace,
                external_order_id=order.external_order_id,
                order_id=order.order_id,
                reason=reason,
            ),
            **_MARKETPLACE_CALL,
        )

    async def _at_psp(self, operation: str, call: Awaitable[PaymentResult]) -> PaymentResult:
        """One operation at the PSP, retried while the PSP is unreachable; a request it
        refuses as sent (already recorded, and told to finance) comes back as not ok."""
        try:
            return await call
        except ActivityError as err:
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.type == PAYMENT_REJECTED):
                raise
            return PaymentResult.model_validate(
                {"ok": False, "operation": operation, "status": "failed", "code": "rejected"}
            )

    # ---------------------------------------------------------------- messages
    @workflow.query
    def view(self) -> OrderView:
        progress, review = self._state.progress, self._state.review
        classification, assessment = review.classification, review.assessment
        booking = self._state.parcel.booking
        return OrderView(
            order_id=self._order.order_id,
            status=progress.status or OrderStatus.RECEIVED,
            order_type=classification.order_type if classification else None,
            department=classification.department if classification else None,
            risk_score=assessment.score if assessment else None,
            risk_reasons=assessment.reasons if assessment else [],
            flagged=bool(assessment and assessment.flagged),
            awaiting=progress.awaiting,
            tracking_number=booking.tracking_number if booking else None,
            carrier=booking.carrier if booking else None,
            timeline=list(progress.timeline),
        )

    @workflow.update
    async def decide_review(self, decision: ReviewDecision) -> OrderView:
        review = self._state.review
        review.decision = decision
        await workflow.wait_condition(lambda: review.recorded or self._cancel_finished())
        return self.view()

    @decide_review.validator
    def _validate_decision(self, decision: ReviewDecision) -> None:
        if self._awaiting() != Awaiting.REVIEW_DECISION or self._state.review.decision is not None:
            raise ApplicationError(
                f"order {self._order.order_id} awaits no review decision (status {self._status()})",
                type="WrongState",
                non_retryable=True,
            )

    @workflow.update
    async def cancel(self, request: CancelRequest) -> CancelResult:
        cancellation = self._state.cancellation
        if cancellation.request is None:
            cancellation.request = request
        await workflow.wait_condition(self._cancel_finished)
        assert cancellation.result is not None
        return cancellation.result

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        refusal = self._cancel_refusal()
        if refusal is not None:
            raise ApplicationError(refusal, type="WrongState", non_retryable=True)

    def _cancel_refusal(self) -> str | None:
        """Why a cancel cannot be taken now; None when it can (a repeat gets the same result)."""
        status = self._status()
        if status == OrderStatus.CANCELLED or self._state.cancellation.request is not None:
            return None
        if self._state.parcel.shipping_started or status in SHIPPED_OR_LATER:
            return (
                f"order {self._order.order_id} has already shipped and can no longer be cancelled"
            )
        if status in TERMINAL_STATUSES:
            return f"order {self._order.order_id} is {status} and can no longer be cancelled"
        return None

    @workflow.signal
    def request_cancel(self, request: CancelRequest) -> None:
        """A cancel sent while no worker could answer it (the API answered "pending"): it is
        durable in history and taken, by the same rules as the Update, when the order runs
        again; one that comes too late is noted on the timeline instead."""
        if self._cancel_refusal() is not None:
            self._note("cancel refused", actor=request.requested_by, reason=request.reason)
        elif self._state.cancellation.request is None:
            self._state.cancellation.request = request

    @workflow.update
    async def move_release(self, change: ReleaseDateChange) -> OrderView:
        stock = self._state.stock
        move_no = stock.release_moved + 1
        stock.release_moved = move_no
        moved: ReleaseHold = await self._local(
            ActivityName.MOVE_RELEASE,
            ReleaseMoveInput(
                order_id=self._order.order_id, move_no=move_no, by=change.by, note=change.note
            ),
            result_type=ReleaseHold,
        )
        if moved.release_at is not None:
            stock.release_at = moved.release_at
            self._note("release moved", actor=change.by, release_at=moved.release_at.isoformat())
        stock.release_moves += 1
        return self.view()

    @move_release.validator
    def _validate_move_release(self, change: ReleaseDateChange) -> None:
        if self._awaiting() != Awaiting.RELEASE:
            raise self._wrong_state("is not waiting for a release")

    @workflow.signal
    def stock_received(self, receipt: StockReceived) -> None:
        if any(item.sku == receipt.sku for item in self._order.items):
            self._state.stock.signals += 1

    @workflow.update
    async def report_picked(self, report: PickedReport) -> OrderView:
        warehouse = self._state.warehouse
        warehouse.picked = report
        await workflow.wait_condition(lambda: warehouse.picked_recorded or self._cancel_finished())
        return self.view()

    @report_picked.validator
    def _validate_picked(self, report: PickedReport) -> None:
        if self._awaiting() != Awaiting.PICKED or self._state.warehouse.picked is not None:
            raise self._wrong_state("is not waiting to be picked")

    @workflow.update
    async def report_packed(self, report: PackedReport) -> OrderView:
        warehouse = self._state.warehouse
        warehouse.packed = report
        await workflow.wait_condition(lambda: warehouse.packed_recorded or self._cancel_finished())
        return self.view()

    @report_packed.validator
    def _validate_packed(self, report: PackedReport) -> None:
        awaiting = self._awaiting()
        if awaiting != Awaiting.PACKED or self._state.warehouse.packed is not None:
            reason = (
                "has not been picked yet"
                if awaiting == Awaiting.PICKED
                else "is not waiting to be packed"
            )
            raise self._wrong_state(reason)

    def _wrong_state(self, reason: str) -> ApplicationError:
        return ApplicationError(
            f"order {self._order.order_id} {reason} (status {self._status()})",
            type="WrongState",
            non_retryable=True,
        )

    @workflow.signal
    def tracking_event(self, update: TrackingUpdate) -> None:
        self._state.tracking.receive(update)

    @workflow.update
    async def retry_booking(self, request: RebookRequest) -> OrderView:
        parcel = self._state.parcel
        seen = parcel.booking_outcomes
        parcel.rebook_requests += 1
        self._note("booking retried", actor=request.by, comment=request.note)
        await workflow.wait_condition(
            lambda: parcel.booking_outcomes > seen or self._cancel_finished()
        )
        return self.view()

    @retry_booking.validator
    def _validate_retry_booking(self, request: RebookRequest) -> None:
        if self._awaiting() != Awaiting.CARRIER_BOOKING:
            raise self._wrong_state("is not waiting for a carrier booking")

    @workflow.update
    async def retry_capture(self, request: CaptureRetry) -> OrderView:
        payment = self._state.payment
        seen = payment.capture_outcomes
        payment.capture_requests += 1
        self._note("payment capture retried", actor=request.by, comment=request.note)
        await workflow.wait_condition(
            lambda: payment.capture_outcomes > seen or self._cancel_finished()
        )
        return self.view()

    @retry_capture.validator
    def _validate_retry_capture(self, request: CaptureRetry) -> None:
        if self._awaiting() != Awaiting.PAYMENT_CAPTURE:
            raise self._wrong_state("is not waiting for its payment to be captured")

    @workflow.update
    async def resolve_lost_parcel(self, resolution: LostParcelResolution) -> LostParcelOutcome:
        lost = self._state.lost_parcel
        lost.outcome = None
        lost.error = None
        lost.resolution = resolution
        await workflow.wait_condition(lambda: lost.outcome is not None or lost.error is not None)
        if lost.error is not None:
            error, lost.error = lost.error, None
            raise ApplicationError(error, type="WrongState", non_retryable=True)
        assert lost.outcome is not None
        return lost.outcome

    @resolve_lost_parcel.validator
    def _validate_resolution(self, resolution: LostParcelResolution) -> None:
        if (
            self._awaiting() != Awaiting.LOST_PARCEL_RESOLUTION
            or self._state.lost_parcel.resolution is not None
        ):
            raise self._wrong_state("has no lost parcel awaiting a resolution")

    @workflow.update
    async def submit_feedback(self, request: FeedbackRequest) -> FeedbackReceipt:
        aftercare = self._state.aftercare
        # Feedback may come the moment the order is placed: its ticket needs the order's row.
        await workflow.wait_condition(lambda: self._state.progress.status is not None)
        ticket_id = f"FB-{workflow.uuid4().hex[:12].upper()}"
        receipt: FeedbackReceipt = await self._local(
            ActivityName.RECORD_FEEDBACK,
            FeedbackInput(
                order_id=self._order.order_id,
                ticket_id=ticket_id,
                request=request,
                holds_completion=holds_completion(
                    request.category,
                    delivered=self._state.tracking.delivered,
                    completing=aftercare.completing,
                ),
            ),
            result_type=FeedbackReceipt,
        )
        if receipt.created:
            if receipt.holds_completion:
                aftercare.hold(receipt.ticket_id)
            self._note(
                "feedback received",
                actor=request.by,
                ticket_id=receipt.ticket_id,
                category=receipt.category,
                department=receipt.department,
            )
        return receipt

    @submit_feedback.validator
    def _validate_feedback(self, request: FeedbackRequest) -> None:
        if self._state.aftercare.closing:
            raise self._wrong_state("is closed: feedback is taken until the review window ends")

    @workflow.signal
    def feedback_resolved(self, resolved: FeedbackResolved) -> None:
        if self._state.aftercare.release(resolved.ticket_id):
            self._note("complaint resolved", actor=resolved.by, ticket_id=resolved.ticket_id)

    @workflow.update
    async def confirm_receipt(self, confirmation: ReceiptConfirmation) -> OrderView:
        aftercare = self._state.aftercare
        if aftercare.receipt_confirmed is None:
            aftercare.receipt_confirmed = confirmation
            self._note("receipt confirmed", actor=confirmation.by)
        await workflow.wait_condition(lambda: aftercare.completed)
        return self.view()

    @confirm_receipt.validator
    def _validate_confirmation(self, confirmation: ReceiptConfirmation) -> None:
        aftercare = self._state.aftercare
        if not self._state.tracking.delivered:
            raise self._wrong_state("has not been delivered yet")
        if aftercare.completing or aftercare.completed:
            raise self._wrong_state("is completed already")

    @workflow.update
    async def submit_review(self, review: ProductReview) -> ReviewReceipt:
        self._state.aftercare.review_received = True
        receipt: ReviewReceipt = await self._local(
            ActivityName.RECORD_PRODUCT_REVIEW,
            ProductReviewInput(order_id=self._order.order_id, review=review),
            result_type=ReviewReceipt,
        )
        self._note("review received", actor=review.by, rating=review.rating)
        return receipt

    @submit_review.validator
    def _validate_review(self, review: ProductReview) -> None:
        aftercare = self._state.aftercare
        if aftercare.review_received:
            raise self._wrong_state("has been reviewed already")
        if not aftercare.review_open:
            when = "has closed" if aftercare.completed else "opens when the order is completed"
            raise self._wrong_state(f"takes no review: the review window {when}")

    # ---------------------------------------------------------------- helpers
    async def _local(self, name: ActivityName, arg: Any, *, result_type: type | None = None) -> Any:
        # Named when the order is rejected because this activity failed for good.
        self._last_local = name.value
        return await workflow.execute_local_activity(
            name,
            arg,
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
            result_type=result_type,
        )

    async def _wait(
        self, done: Callable[[], bool], timeout: timedelta | None, *, cancellable: bool = True
    ) -> bool:
        """Wait until `done()`, or the timeout; True when done. An accepted cancel interrupts."""

        def ready() -> bool:
            return done() or (cancellable and self._state.cancellation.request is not None)

        if timeout is not None and timeout <= timedelta(0):
            reached = ready()
        else:
            try:
                await workflow.wait_condition(ready, timeout=timeout)
                reached = True
            except TimeoutError:
                reached = False
        if cancellable:
            self._raise_if_cancelled()
        return reached and done()

    async def _sleep(self, duration: timedelta) -> None:
        if duration > timedelta(0):
            await self._wait(lambda: False, duration)

    def _raise_if_cancelled(self) -> None:
        if self._state.cancellation.request is not None:
            raise OrderCancelled()

    def _cancel_finished(self) -> bool:
        return self._state.cancellation.result is not None

    def _status(self) -> OrderStatus:
        """The status as people see it (RECEIVED until step 1 has recorded the order)."""
        return self._state.progress.status or OrderStatus.RECEIVED

    def _awaiting(self) -> Awaiting | None:
        return self._state.progress.awaiting

    def _set_awaiting(self, awaiting: Awaiting | None) -> None:
        self._state.progress.awaiting = awaiting

    def _set_status(self, status: OrderStatus, *, actor: str = "system", **details: Any) -> None:
        progress = self._state.progress
        progress.status = status
        progress.timeline.append(
            TimelineEntry(
                status=status,
                step=STEP_OF_STATUS.get(status, progress.current_step()),
                at=workflow.now(),
                actor=actor,
                details={k: v for k, v in details.items() if v is not None},
            )
        )
        workflow.upsert_search_attributes([sa.ORDER_STATUS.value_set(status)])
        # One line per step reached, with the order's id (the workflow id) on it: a log
        # collector can follow an order without the database. Not written on replay.
        workflow.logger.info("order status %s (by %s)", status.value, actor)

    def _note(self, what: str, *, actor: str = "system", **details: Any) -> None:
        """A timeline entry that does not change the status."""
        progress = self._state.progress
        progress.timeline.append(
            TimelineEntry(
                status=self._status(),
                step=progress.current_step(),
                at=workflow.now(),
                actor=actor,
                details={"note": what, **{k: v for k, v in details.items() if v is not None}},
            )
        )
