"""The typed order client, used by the storefront and by operators alike: place an order,
read its status, cancel, submit feedback, confirm receipt and review, and the operators'
messages to a running order (review decisions, warehouse reports, tracking, lost parcels,
rebooking).

Placing is idempotent on the order id: the workflow id is `order-<order_id>`, so a retried
placement finds the existing workflow instead of starting a second one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from orderflow import search_attributes as sa
from orderflow.models import (
    CancelRequest,
    CancelResult,
    Order,
    OrderPolicy,
    OrderStatus,
    OrderView,
    OrderWorkflowInput,
    PackedReport,
    PickedReport,
    ReviewDecision,
    StockReceived,
    TrackingUpdate,
)
from orderflow.models.messages import (
    CaptureRetry,
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
from workflows.order import OrderWorkflow


class PlacedOrder(BaseModel):
    order_id: str
    workflow_id: str
    status: OrderStatus
    created: bool


def workflow_id_for(order_id: str) -> str:
    return f"order-{order_id}"


class OrderClient:
    def __init__(
        self, client: Client, *, task_queue: str, policy: OrderPolicy | None = None
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._policy = policy or OrderPolicy()

    @property
    def temporal(self) -> Client:
        return self._client

    def handle(self, order_id: str) -> WorkflowHandle[OrderWorkflow, OrderView]:
        return self._client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(order_id))

    async def place_order(self, order: Order, *, policy: OrderPolicy | None = None) -> PlacedOrder:
        now = datetime.now(UTC)
        if order.placed_at is None:
            order = order.model_copy(update={"placed_at": now})
        workflow_id = workflow_id_for(order.order_id)
        try:
            await self._client.start_workflow(
                OrderWorkflow.run,
                OrderWorkflowInput(order=order, policy=policy or self._policy, received_at=now),
                id=workflow_id,
                task_queue=self._task_queue,
                # A completed order's id is never reused; a running one is never started twice.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=sa_for_new_order(order),
            )
        except WorkflowAlreadyStartedError:
            return PlacedOrder(
                order_id=order.order_id,
                workflow_id=workflow_id,
                status=await self.recorded_status(order.order_id),
                created=False,
            )
        return PlacedOrder(
            order_id=order.order_id,
            workflow_id=workflow_id,
            status=OrderStatus.RECEIVED,
            created=True,
        )

    async def get_status(self, order_id: str) -> OrderView:
        return await self.handle(order_id).query(OrderWorkflow.view)

    async def recorded_status(self, order_id: str) -> OrderStatus:
        """The status the order's workflow last published (its `OrderStatus` search
        attribute): read from the server, so it answers while no worker runs."""
        description = await self.handle(order_id).describe()
        current = description.typed_search_attributes.get(sa.ORDER_STATUS)
        return OrderStatus(current) if current else OrderStatus.RECEIVED

    async def placed_input(self, order_id: str) -> OrderWorkflowInput | None:
        """The order as it was placed, read from the start of its workflow's history: known
        from the moment `place_order` returned, before any worker has run step 1 (and while
        none runs at all). None when no such order was ever placed."""
        try:
            async for event in self.handle(order_id).fetch_history_events(page_size=1):
                started = event.workflow_execution_started_event_attributes
                (data,) = await self._client.data_converter.decode(
                    started.input.payloads, [OrderWorkflowInput]
                )
                assert isinstance(data, OrderWorkflowInput)
                return data
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return None

    async def cancel(
        self,
        order_id: str,
        reason: str,
        *,
        requested_by: str = "customer",
        wait: timedelta | None = None,
    ) -> CancelResult:
        """Cancel and wait for the undo. With `wait`, a cancel that no worker has taken by
        then raises `WorkflowUpdateRPCTimeoutOrCancelledError`: leave it with the order
        instead (`request_cancel`)."""
        return await self.handle(order_id).execute_update(
            OrderWorkflow.cancel,
            CancelRequest(reason=reason, requested_by=requested_by),
            rpc_timeout=wait,
        )

    async def request_cancel(self, order_id: str, request: CancelRequest) -> None:
        """Leave a cancel with the order without waiting for a worker: a signal is durable
        in history at once and taken, exactly once, when a worker runs the order."""
        await self.handle(order_id).signal(OrderWorkflow.request_cancel, request)

    # Operators' messages ---------------------------------------------------------------
    async def decide_review(self, order_id: str, decision: ReviewDecision) -> OrderView:
        return await self.handle(order_id).execute_update(OrderWorkflow.decide_review, decision)

    async def report_picked(self, order_id: str, report: PickedReport) -> OrderView:
        return await self.handle(order_id).execute_update(OrderWorkflow.report_picked, report)

    async def report_packed(self, order_id: str, report: PackedReport) -> OrderView:
        return await self.handle(order_id).execute_update(OrderWorkflow.report_packed, report)

    async def stock_received(self, order_id: str, receipt: StockReceived) -> None:
        await self.handle(order_id).signal(OrderWorkflow.stock_received, receipt)

    async def tracking_event(self, order_id: str, update: TrackingUpdate) -> None:
        await self.handle(order_id).signal(OrderWorkflow.tracking_event, update)

    # After delivery: the customer's feedback, confirmation and review; logistics' cases -----
    async def submit_feedback(self, order_id: str, request: FeedbackRequest) -> FeedbackReceipt:
        # The request key is also the Update's id: a retried call is the same Update.
        return await self.handle(order_id).execute_update(
            OrderWorkflow.submit_feedback, request, id=f"feedback-{request.request_key}"
        )

    async def feedback_resolved(self, order_id: str, resolved: FeedbackResolved) -> None:
        await self.handle(order_id).signal(OrderWorkflow.feedback_resolved, resolved)

    async def confirm_receipt(
        self, order_id: str, confirmation: ReceiptConfirmation | None = None
    ) -> OrderView:
        return await self.handle(order_id).execute_update(
            OrderWorkflow.confirm_receipt, confirmation or ReceiptConfirmation()
        )

    async def submit_review(self, order_id: str, review: ProductReview) -> ReviewReceipt:
        return await self.handle(order_id).execute_update(OrderWorkflow.submit_review, review)

    async def resolve_lost_parcel(
        self, order_id: str, resolution: LostParcelResolution
    ) -> LostParcelOutcome:
        return await self.handle(order_id).execute_update(
            OrderWorkflow.resolve_lost_parcel, resolution
        )

    async def retry_booking(self, order_id: str, request: RebookRequest | None = None) -> OrderView:
        return await self.handle(order_id).execute_update(
            OrderWorkflow.retry_booking, request or RebookRequest()
        )

    async def move_release(self, order_id: str, change: ReleaseDateChange) -> OrderView:
        return await self.handle(order_id).execute_update(OrderWorkflow.move_release, change)

    async def retry_capture(self, order_id: str, request: CaptureRetry | None = None) -> OrderView:
        return await self.handle(order_id).execute_update(
            OrderWorkflow.retry_capture, request or CaptureRetry()
        )


def sa_for_new_order(order: Order) -> TypedSearchAttributes:
    """What the Web UI can filter on from the first moment, before any step has run."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.CUSTOMER_ID, order.customer.id),
            SearchAttributePair(sa.ORDER_STATUS, str(OrderStatus.RECEIVED)),
            SearchAttributePair(sa.FLAGGED, False),
        ]
    )
