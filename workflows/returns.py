"""The return workflow: one per return, id `return-<return_id>`, started beside its order's
workflow (the order's own run is not touched).

The label is booked and mailed; the customer has `send_back_within` to hand the parcel in,
else the return closes unrefunded. Once the parcel is back, the warehouse inspects each line
(`inspect`: restock or dispose, with a note); restocked units serve the orders waiting for
the SKU, which are woken as a goods receipt wakes them. Past `inspection_sla` the warehouse's
lead is told once and the return keeps waiting. When every line is inspected, the accepted
lines (and the shipping share, per `ReturnPolicy`) are refunded once.

Lines the customer asked to exchange are not refunded: a replacement order (`<return_id>-EX`,
the same customer, uncharged) is started as an abandoned child when the return is approved
or, per `ReturnPolicy.exchange_on`, when the parcel is back, and runs the order's usual steps.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    WorkflowAlreadyStartedError,
)

from workflows.call_options import DB_RETRY, DB_TIMEOUT, SERVICE_RETRY, SERVICE_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from orderflow import search_attributes as sa
    from orderflow.models import OrderPolicy, OrderStatus, OrderWorkflowInput
    from orderflow.models.activity_names import ActivityName
    from orderflow.models.messages import StockReceived, TrackingUpdate
    from orderflow.models.returns import (
        InspectionOutcome,
        InspectionReport,
        Restocked,
        ReturnDecision,
        ReturnDecisionInput,
        ReturnDecisionNeeded,
        ReturnExchangeInput,
        ReturnInspectionInput,
        ReturnLabel,
        ReturnLabelInput,
        ReturnRef,
        ReturnRefundInput,
        ReturnRefundOutcome,
        ReturnStatus,
        ReturnTracking,
        ReturnView,
        ReturnWorkflowInput,
        refund_amount,
    )

# The carrier's scans of a parcel on its way back; DELIVERED means back at the warehouse.
_SENT = ("IN_TRANSIT", "OUT_FOR_DELIVERY")

# Returns began before exchanges existed never had a replacement to place.
PATCH_EXCHANGES = "return-exchanges"
# A label the carrier refuses for good goes to customer service instead of failing the return.
PATCH_LABEL_REFUSED = "return-label-refused-to-customer-service"


def workflow_id_for(return_id: str) -> str:
    return f"return-{return_id}"


@workflow.defn
class ReturnWorkflow:
    @workflow.init
    def __init__(self, data: ReturnWorkflowInput) -> None:
        self._data = data
        self._status = ReturnStatus.REQUESTED if data.decision_needed else ReturnStatus.APPROVED
        self._deciding = False
        self._label: ReturnLabel | None = None
        self._sent_at: datetime | None = None
        self._arrived_at: datetime | None = None
        self._inspecting: set[str] = set()
        self._inspected: dict[str, InspectionOutcome] = {}
        self._replacement_order_id: str | None = None
        # How often customer service has been asked: once for the request, once a refused label.
        self._round = 0

    @workflow.run
    async def run(self, data: ReturnWorkflowInput) -> ReturnView:
        policy = data.policy
        ref = ReturnRef(return_id=data.return_id, order_id=data.order_id)
        if data.decision_needed and not await self._decided(data.decision_needed):
            await workflow.wait_condition(workflow.all_handlers_finished)
            return self.view()
        send_back_by = await self._book_label()
        if send_back_by is None:
            await workflow.wait_condition(workflow.all_handlers_finished)
            return self.view()
        self._status = ReturnStatus.LABEL_SENT
        # Once the label is booked: a return refused after its label was refused sends nothing.
        if policy.exchange_on == "approval":
            await self._place_replacement()

        handed_in = await self._wait(
            lambda: self._sent_at is not None or self._arrived_at is not None,
            send_back_by - workflow.now(),
        )
        if not handed_in:
            await self._local(ActivityName.CLOSE_UNSENT_RETURN, ref)
            self._status = ReturnStatus.CLOSED
            return self.view()
        if self._sent_at is not None:
            await self._track("IN_TRANSIT", self._sent_at)
            self._status = ReturnStatus.IN_TRANSIT
        await workflow.wait_condition(lambda: self._arrived_at is not None)
        assert self._arrived_at is not None
        await self._track("ARRIVED", self._arrived_at)
        self._status = ReturnStatus.ARRIVED
        if policy.exchange_on == "arrival":
            await self._place_replacement()

        def all_inspected() -> bool:
            return len(self._inspected) == len(data.lines)

        if not await self._wait(all_inspected, policy.inspection_sla):
            await self._local(ActivityName.NOTIFY_RETURN_INSPECTION_OVERDUE, ref)
            await workflow.wait_condition(all_inspected)
        self._status = ReturnStatus.INSPECTED

        amount = refund_amount(data.lines, self._inspected, policy, data.shipping_share)
        try:
            outcome: ReturnRefundOutcome = await workflow.execute_activity(
                ActivityName.REFUND_RETURN,
                ReturnRefundInput(
                    return_id=data.return_id,
                    order_id=data.order_id,
                    amount=amount,
                    exchanged=self._replacement_order_id is not None,
                ),
                start_to_close_timeout=SERVICE_TIMEOUT,
                retry_policy=SERVICE_RETRY,
                result_type=ReturnRefundOutcome,
            )
            self._status = outcome.status
        except ActivityError:
            # The PSP refused the refund as sent: it is recorded as failed and waits in
            # finance's queue, which retries it there; the return stays inspected.
            workflow.logger.warning("refund of return %s refused by the PSP", data.return_id)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    # ---------------------------------------------------------------- messages
    @workflow.query
    def view(self) -> ReturnView:
        return ReturnView(
            return_id=self._data.return_id,
            order_id=self._data.order_id,
            status=self._status,
            tracking_number=self._label.tracking_number if self._label else None,
            inspected=dict(self._inspected),
            replacement_order_id=self._replacement_order_id,
        )

    @workflow.signal
    def parcel_tracking(self, update: TrackingUpdate) -> None:
        if update.status in _SENT and self._sent_at is None:
            self._sent_at = update.at
        elif update.status == "DELIVERED" and self._arrived_at is None:
            self._arrived_at = update.at

    @workflow.update
    async def decide(self, decision: ReturnDecision) -> ReturnView:
        """Customer service approves (the label follows) or refuses the return."""
        self._deciding = True
        await self._local(
            ActivityName.RECORD_RETURN_DECISION,
            ReturnDecisionInput(
                return_id=self._data.return_id,
                order_id=self._data.order_id,
                decision=decision,
                round=self._round,
            ),
        )
        self._status = ReturnStatus.APPROVED if decision.approve else ReturnStatus.REJECTED
        return self.view()

    @decide.validator
    def _validate_decide(self, decision: ReturnDecision) -> None:
        if self._status != ReturnStatus.REQUESTED or self._deciding:
            raise ApplicationError(
                f"return {self._data.return_id} awaits no decision (status {self._status})",
                type="WrongState",
                non_retryable=True,
            )

    @workflow.update
    async def inspect(self, report: InspectionReport) -> ReturnView:
        """Record each line's finding; restocked units serve waiting orders at once."""
        quantities = {line.sku: line.quantity for line in self._data.lines}
        self._inspecting.update(line.sku for line in report.lines)
        for line in report.lines:
            restocked: Restocked = await self._local(
                ActivityName.RECORD_RETURN_INSPECTION,
                ReturnInspectionInput(
                    return_id=self._data.return_id,
                    order_id=self._data.order_id,
                    line=line,
                    quantity=quantities[line.sku],
                    by=report.by,
                ),
                result_type=Restocked,
            )
            for order_id in restocked.served_orders:
                await self._wake(order_id, line.sku, quantities[line.sku])
            self._inspected[line.sku] = line.outcome
        return self.view()

    @inspect.validator
    def _validate_inspect(self, report: InspectionReport) -> None:
        if self._status != ReturnStatus.ARRIVED:
            raise ApplicationError(
                f"return {self._data.return_id} is not awaiting inspection (status {self._status})",
                type="WrongState",
                non_retryable=True,
            )
        skus = [line.sku for line in report.lines]
        known = {line.sku for line in self._data.lines}
        if len(set(skus)) != len(skus):
            raise ApplicationError("each SKU may be inspected once", type="InvalidInput")
        for sku in skus:
            if sku not in known:
                raise ApplicationError(
                    f"{sku} is not a line of return {self._data.return_id}", type="InvalidInput"
                )
            if sku in self._inspecting:
                raise ApplicationError(f"{sku} is inspected already", type="WrongState")

    # ---------------------------------------------------------------- helpers
    async def _decided(self, why: str) -> bool:
        """Ask customer service and wait for its answer; True: approved."""
        self._status = ReturnStatus.REQUESTED
        self._deciding = False
        await self._local(
            ActivityName.ASK_RETURN_DECISION,
            ReturnDecisionNeeded(
                return_id=self._data.return_id,
                order_id=self._data.order_id,
                why=why,
                round=self._round,
            ),
        )
        await workflow.wait_condition(lambda: self._status != ReturnStatus.REQUESTED)
        return self._status != ReturnStatus.REJECTED

    async def _book_label(self) -> datetime | None:
        """Book the label (the customer's send-back deadline is the one the timer keeps).
        A carrier that refuses it for good hands the return to customer service, which has
        it booked again (once the cause is mended) or refuses it; None: refused."""
        data = self._data
        while True:
            send_back_by = workflow.now() + data.policy.send_back_within
            try:
                self._label = await workflow.execute_activity(
                    ActivityName.BOOK_RETURN_LABEL,
                    ReturnLabelInput(
                        return_id=data.return_id, order_id=data.order_id, send_back_by=send_back_by
                    ),
                    start_to_close_timeout=SERVICE_TIMEOUT,
                    retry_policy=SERVICE_RETRY,
                    result_type=ReturnLabel,
                )
                return send_back_by
            except ActivityError as err:
                # Returns begun before this failed here, and must replay as they ran.
                if not workflow.patched(PATCH_LABEL_REFUSED):
                    raise
                cause = err.cause.message if isinstance(err.cause, FailureError) else str(err)
                self._round += 1
                if not await self._decided(f"the carrier refused the return label: {cause}"):
                    return None

    async def _place_replacement(self) -> None:
        """Record the exchange, then start the replacement order: its id is fixed, so a
        start that meets it running (or ended) is the same order, never a second one."""
        replacement = self._data.replacement
        if replacement is None or not workflow.patched(PATCH_EXCHANGES):
            return
        await self._local(
            ActivityName.RECORD_EXCHANGE,
            ReturnExchangeInput(
                return_id=self._data.return_id,
                order_id=self._data.order_id,
                replacement_order_id=replacement.order_id,
            ),
        )
        try:
            await workflow.start_child_workflow(
                "OrderWorkflow",
                OrderWorkflowInput(
                    order=replacement,
                    policy=self._data.order_policy or OrderPolicy(),
                    received_at=workflow.now(),
                ),
                id=f"order-{replacement.order_id}",
                task_queue=workflow.info().task_queue,
                # The replacement runs its own course, whatever becomes of the return.
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.CUSTOMER_ID, replacement.customer.id),
                        SearchAttributePair(sa.ORDER_STATUS, str(OrderStatus.RECEIVED)),
                        SearchAttributePair(sa.FLAGGED, False),
                    ]
                ),
            )
        except WorkflowAlreadyStartedError:
            pass
        self._replacement_order_id = replacement.order_id

    async def _wake(self, order_id: str, sku: str, quantity: int) -> None:
        handle = workflow.get_external_workflow_handle(f"order-{order_id}")
        try:
            await handle.signal("stock_received", StockReceived(sku=sku, quantity=quantity))
        except FailureError:
            # Its stock is reserved already; an order that has ended needs no waking.
            workflow.logger.info("order %s could not be woken for %s", order_id, sku)

    async def _track(self, status: Literal["IN_TRANSIT", "ARRIVED"], at: datetime) -> None:
        await self._local(
            ActivityName.RECORD_RETURN_TRACKING,
            ReturnTracking(
                return_id=self._data.return_id,
                order_id=self._data.order_id,
                status=status,
                at=at,
            ),
        )

    async def _local(self, name: ActivityName, arg: Any, *, result_type: type | None = None) -> Any:
        return await workflow.execute_local_activity(
            name,
            arg,
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
            result_type=result_type,
        )

    @staticmethod
    async def _wait(done: Callable[[], bool], timeout: timedelta) -> bool:
        if timeout <= timedelta(0):
            return done()
        try:
            await workflow.wait_condition(done, timeout=timeout)
        except TimeoutError:
            return False
        return True
