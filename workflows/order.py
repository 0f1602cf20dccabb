"""The order workflow: one durable workflow per order, id `order-<order_id>`, running the
eight steps of the order process and waiting for people only where a person is needed.

Deterministic orchestration only: every effect is an activity (called by name), every wait
a timer or a condition on messages, every duration from the `OrderPolicy` in the input.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.names import ActivityName
    from orderflow import search_attributes as sa
    from orderflow.models import (
        SHIPPED_OR_LATER,
        STEP_OF_STATUS,
        TERMINAL_STATUSES,
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
    from orderflow.models.steps import (
        AssessRiskInput,
        BackorderReminderInput,
        BookShipmentInput,
        CancelInput,
        CompleteInput,
        FollowUpInput,
        FollowUpResult,
        OrderRef,
        PickTaskInput,
        ReviewOutcomeInput,
        TrackingInput,
        WarehouseReportInput,
    )

# Database steps are short: local activities, retried until PostgreSQL answers again.
_DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)
_DB_TIMEOUT = timedelta(seconds=15)
# Calls to outside services (carrier) are regular activities with their own retries.
_SERVICE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)
_SERVICE_TIMEOUT = timedelta(seconds=30)


class OrderCancelled(Exception):
    """Raised inside the run loop when an accepted cancel must undo the order."""


@workflow.defn
class OrderWorkflow:
    @workflow.init
    def __init__(self, data: OrderWorkflowInput) -> None:
        self._order: Order = data.order
        self._policy = data.policy
        self._status: OrderStatus | None = None
        self._timeline: list[TimelineEntry] = []
        self._classification: Classification | None = None
        self._assessment: RiskAssessment | None = None
        self._awaiting: str | None = None
        self._decision: ReviewDecision | None = None
        self._review_recorded = False
        self._stock_signals = 0
        self._picked: PickedReport | None = None
        self._picked_recorded = False
        self._packed: PackedReport | None = None
        self._packed_recorded = False
        self._shipping_started = False
        self._booking: ShipmentBooking | None = None
        self._tracking_inbox: list[TrackingUpdate] = []
        self._seen_tracking: set[str] = set()
        self._delivered = False
        self._cancel_request: CancelRequest | None = None
        self._cancel_result: CancelResult | None = None

    # ---------------------------------------------------------------- run
    @workflow.run
    async def run(self, data: OrderWorkflowInput) -> OrderView:
        await self._local(ActivityName.RECORD_ORDER, data)
        self._set_status(OrderStatus.RECEIVED)
        try:
            await self._classify()
            if await self._review():
                await self._reserve_stock()
                await self._pick_and_pack()
                await self._ship()
                await self._track_until_delivered()
                await self._complete()
        except OrderCancelled:
            await self._undo()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    # ---------------------------------------------------------------- steps
    async def _classify(self) -> None:
        result: Classification = await self._local(
            ActivityName.CLASSIFY_ORDER, self._order, result_type=Classification
        )
        self._classification = result
        workflow.upsert_search_attributes(
            [sa.ORDER_TYPE.value_set(result.order_type), sa.DEPARTMENT.value_set(result.department)]
        )
        self._set_status(OrderStatus.CLASSIFIED, rule=result.rule)
        self._raise_if_cancelled()

    async def _review(self) -> bool:
        """Step 3; True when the order may go on."""
        assessment: RiskAssessment = await self._local(
            ActivityName.ASSESS_RISK,
            AssessRiskInput(
                order=self._order,
                review_sla=self._policy.review_sla,
                review_deadline=self._policy.review_deadline,
            ),
            result_type=RiskAssessment,
        )
        self._assessment = assessment
        workflow.upsert_search_attributes(
            [sa.RISK_SCORE.value_set(assessment.score), sa.FLAGGED.value_set(assessment.flagged)]
        )
        if not assessment.flagged:
            self._set_status(OrderStatus.APPROVED, auto=True)
            self._raise_if_cancelled()
            return True

        self._set_status(OrderStatus.PENDING_REVIEW, score=assessment.score)
        self._awaiting = "review_decision"
        timed_out = False
        if not await self._wait(lambda: self._decision is not None, self._policy.review_sla):
            await self._local(ActivityName.ESCALATE_REVIEW, OrderRef(order_id=self._order.order_id))
            self._note("review escalated")
            remaining = self._policy.review_deadline - self._policy.review_sla
            if not await self._wait(lambda: self._decision is not None, remaining):
                timed_out = True
                self._decision = ReviewDecision(
                    decision="reject", reviewer="system", note="review_timeout"
                )
        self._awaiting = None
        decision = self._decision
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
        self._review_recorded = True
        if approved:
            self._raise_if_cancelled()
        return approved

    async def _reserve_stock(self) -> None:
        reminders = 0
        waited = timedelta(0)
        while True:
            seen_signals = self._stock_signals
            outcome: ReservationOutcome = await self._local(
                ActivityName.RESERVE_STOCK, self._order, result_type=ReservationOutcome
            )
            if outcome.reserved:
                break
            if self._status != OrderStatus.BACKORDERED:
                self._set_status(OrderStatus.BACKORDERED, shortages=outcome.shortages)
            self._awaiting = "stock"
            interval = self._policy.backorder_reminder_interval

            def stock_arrived(seen: int = seen_signals) -> bool:
                return self._stock_signals > seen

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
        self._awaiting = None
        self._set_status(OrderStatus.RESERVED)
        self._raise_if_cancelled()

    async def _pick_and_pack(self) -> None:
        order_id = self._order.order_id
        await self._local(
            ActivityName.OPEN_PICK_TASK,
            PickTaskInput(order_id=order_id, pick_sla=self._policy.pick_sla),
        )
        self._set_status(OrderStatus.PICKING)
        self._raise_if_cancelled()
        if self._policy.auto_warehouse:
            await self._sleep(self._policy.auto_pick_delay)
            self._picked = self._picked or PickedReport(by="auto-warehouse")
        else:
            self._awaiting = "picked"
            if not await self._wait(lambda: self._picked is not None, self._policy.pick_sla):
                await self._local(ActivityName.NOTIFY_PICK_OVERDUE, OrderRef(order_id=order_id))
                await self._wait(lambda: self._picked is not None, None)
        assert self._picked is not None
        await self._local(
            ActivityName.RECORD_PICKED, WarehouseReportInput(order_id=order_id, by=self._picked.by)
        )
        self._note("picked", actor=self._picked.by)
        self._picked_recorded = True
        self._raise_if_cancelled()

        weight: float | None
        if self._policy.auto_warehouse:
            await self._sleep(self._policy.auto_pack_delay)
            by, weight = "auto-warehouse", None
        else:
            self._awaiting = "packed"
            await self._wait(lambda: self._packed is not None, None)
            assert self._packed is not None
            by, weight = self._packed.by, self._packed.weight_kg
        self._awaiting = None
        measured: float = await self._local(
            ActivityName.RECORD_PACKED,
            WarehouseReportInput(order_id=order_id, by=by, weight_kg=weight),
            result_type=float,
        )
        self._packed = PackedReport(weight_kg=measured, by=by)
        self._set_status(OrderStatus.PACKED, weight_kg=measured)
        self._packed_recorded = True
        self._raise_if_cancelled()

    async def _ship(self) -> None:
        # From here on a cancel is refused: the parcel is being handed to the carrier.
        self._shipping_started = True
        assert self._packed is not None
        booking: ShipmentBooking = await workflow.execute_activity(
            ActivityName.BOOK_SHIPMENT,
            BookShipmentInput(
                order=self._order, weight_kg=self._packed.weight_kg, requested_at=workflow.now()
            ),
            start_to_close_timeout=_SERVICE_TIMEOUT,
            retry_policy=_SERVICE_RETRY,
            result_type=ShipmentBooking,
        )
        self._booking = booking
        self._set_status(
            OrderStatus.SHIPPED, carrier=booking.carrier, tracking_number=booking.tracking_number
        )

    async def _track_until_delivered(self) -> None:
        assert self._booking is not None
        attempt = 0
        follow_up_at = self._booking.expected_delivery + self._policy.delivery_grace
        while True:
            await self._apply_tracking()
            if self._delivered:
                return
            self._awaiting = "delivery"
            timeout = max(follow_up_at - workflow.now(), timedelta(0))
            if await self._wait(lambda: bool(self._tracking_inbox), timeout, cancellable=False):
                continue
            attempt += 1
            result: FollowUpResult = await workflow.execute_activity(
                ActivityName.FOLLOW_UP_DELIVERY,
                FollowUpInput(
                    order_id=self._order.order_id,
                    attempt=attempt,
                    escalate=attempt >= self._policy.followup_escalate_after,
                ),
                start_to_close_timeout=_SERVICE_TIMEOUT,
                retry_policy=_SERVICE_RETRY,
                result_type=FollowUpResult,
            )
            self._note("delivery follow-up", attempt=attempt, carrier_status=result.carrier_status)
            follow_up_at = workflow.now() + self._policy.followup_interval

    async def _apply_tracking(self) -> None:
        while self._tracking_inbox:
            update = self._tracking_inbox.pop(0)
            if self._booking is None or update.tracking_number != self._booking.tracking_number:
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
                self._delivered = True

    async def _complete(self) -> None:
        self._awaiting = None
        await self._sleep(self._policy.quiet_period)
        await self._local(
            ActivityName.COMPLETE_ORDER,
            CompleteInput(order_id=self._order.order_id, how="delivered"),
        )
        self._set_status(OrderStatus.COMPLETED)

    async def _undo(self) -> None:
        request = self._cancel_request
        assert request is not None
        self._awaiting = None
        result: CancelResult = await self._local(
            ActivityName.CANCEL_ORDER,
            CancelInput(order_id=self._order.order_id, request=request),
            result_type=CancelResult,
        )
        self._set_status(OrderStatus.CANCELLED, actor=request.requested_by, reason=request.reason)
        self._cancel_result = result

    # ---------------------------------------------------------------- messages
    @workflow.query
    def view(self) -> OrderView:
        return OrderView(
            order_id=self._order.order_id,
            status=self._status or OrderStatus.RECEIVED,
            order_type=self._classification.order_type if self._classification else None,
            department=self._classification.department if self._classification else None,
            risk_score=self._assessment.score if self._assessment else None,
            risk_reasons=self._assessment.reasons if self._assessment else [],
            flagged=bool(self._assessment and self._assessment.flagged),
            awaiting=self._awaiting,
            tracking_number=self._booking.tracking_number if self._booking else None,
            carrier=self._booking.carrier if self._booking else None,
            timeline=list(self._timeline),
        )

    @workflow.update
    async def decide_review(self, decision: ReviewDecision) -> OrderView:
        self._decision = decision
        await workflow.wait_condition(
            lambda: self._review_recorded or self._cancel_result is not None
        )
        return self.view()

    @decide_review.validator
    def _validate_decision(self, decision: ReviewDecision) -> None:
        if self._awaiting != "review_decision" or self._decision is not None:
            raise ApplicationError(
                f"order {self._order.order_id} awaits no review decision "
                f"(status {self._status or OrderStatus.RECEIVED})",
                type="WrongState",
                non_retryable=True,
            )

    @workflow.update
    async def cancel(self, request: CancelRequest) -> CancelResult:
        if self._cancel_request is None:
            self._cancel_request = request
        await workflow.wait_condition(lambda: self._cancel_result is not None)
        assert self._cancel_result is not None
        return self._cancel_result

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        status = self._status or OrderStatus.RECEIVED
        if status == OrderStatus.CANCELLED or self._cancel_request is not None:
            return  # a repeated cancel gets the same result
        if self._shipping_started or status in SHIPPED_OR_LATER:
            raise ApplicationError(
                f"order {self._order.order_id} has already shipped and can no longer be cancelled",
                type="WrongState",
                non_retryable=True,
            )
        if status in TERMINAL_STATUSES:
            raise ApplicationError(
                f"order {self._order.order_id} is {status} and can no longer be cancelled",
                type="WrongState",
                non_retryable=True,
            )

    @workflow.signal
    def stock_received(self, receipt: StockReceived) -> None:
        if any(item.sku == receipt.sku for item in self._order.items):
            self._stock_signals += 1

    @workflow.update
    async def report_picked(self, report: PickedReport) -> OrderView:
        self._picked = report
        await workflow.wait_condition(
            lambda: self._picked_recorded or self._cancel_result is not None
        )
        return self.view()

    @report_picked.validator
    def _validate_picked(self, report: PickedReport) -> None:
        if self._awaiting != "picked" or self._picked is not None:
            raise self._wrong_state("is not waiting to be picked")

    @workflow.update
    async def report_packed(self, report: PackedReport) -> OrderView:
        self._packed = report
        await workflow.wait_condition(
            lambda: self._packed_recorded or self._cancel_result is not None
        )
        return self.view()

    @report_packed.validator
    def _validate_packed(self, report: PackedReport) -> None:
        if self._awaiting != "packed" or self._packed is not None:
            reason = (
                "has not been picked yet"
                if self._awaiting == "picked"
                else "is not waiting to be packed"
            )
            raise self._wrong_state(reason)

    def _wrong_state(self, reason: str) -> ApplicationError:
        return ApplicationError(
            f"order {self._order.order_id} {reason} (status {self._status or OrderStatus.RECEIVED})",
            type="WrongState",
            non_retryable=True,
        )

    @workflow.signal
    def picked(self, report: PickedReport) -> None:
        if self._awaiting == "picked" and self._picked is None:
            self._picked = report

    @workflow.signal
    def packed(self, report: PackedReport) -> None:
        if self._awaiting == "packed" and self._packed is None:
            self._packed = report

    @workflow.signal
    def tracking_event(self, update: TrackingUpdate) -> None:
        # Kept even before the booking is known here: a fast carrier may report first.
        if update.event_id in self._seen_tracking or self._delivered:
            return
        self._seen_tracking.add(update.event_id)
        self._tracking_inbox.append(update)

    # ---------------------------------------------------------------- helpers
    async def _local(self, name: ActivityName, arg: Any, *, result_type: type | None = None) -> Any:
        return await workflow.execute_local_activity(
            name,
            arg,
            start_to_close_timeout=_DB_TIMEOUT,
            retry_policy=_DB_RETRY,
            result_type=result_type,
        )

    async def _wait(
        self, done: Callable[[], bool], timeout: timedelta | None, *, cancellable: bool = True
    ) -> bool:
        """Wait until `done()`, or the timeout; True when done. An accepted cancel interrupts."""

        def ready() -> bool:
            return done() or (cancellable and self._cancel_request is not None)

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
        if self._cancel_request is not None:
            raise OrderCancelled()

    def _set_status(self, status: OrderStatus, *, actor: str = "system", **details: Any) -> None:
        self._status = status
        self._timeline.append(
            TimelineEntry(
                status=status,
                step=STEP_OF_STATUS.get(status, self._current_step()),
                at=workflow.now(),
                actor=actor,
                details={k: v for k, v in details.items() if v is not None},
            )
        )
        workflow.upsert_search_attributes([sa.ORDER_STATUS.value_set(status)])

    def _note(self, what: str, *, actor: str = "system", **details: Any) -> None:
        """A timeline entry that does not change the status."""
        status = self._status or OrderStatus.RECEIVED
        self._timeline.append(
            TimelineEntry(
                status=status,
                step=self._current_step(),
                at=workflow.now(),
                actor=actor,
                details={"note": what, **{k: v for k, v in details.items() if v is not None}},
            )
        )

    def _current_step(self) -> int:
        return self._timeline[-1].step if self._timeline else 1
