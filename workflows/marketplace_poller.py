"""The marketplace poller: one durable workflow per configured marketplace, id
`marketplace-poller-<code>`, that reads the marketplace's feed after its cursor and places
each new order through the same order workflow as the storefront's.

- The cursor lives in the workflow: it moves on only after every order of a page was
  handled, survives every restart, and is handed to the next run when the run continues as
  new (after `PAGES_PER_RUN` pages, or when the server finds the history large).
- A new order is mapped onto the shop's order and its workflow started as an abandoned
  child, id `order-<code>-<id>` (the storefront's id scheme): a re-read page finds it
  started and places nothing twice. The marketplace is acknowledged only once it is placed.
- An order that cannot be mapped is kept as a channel exception for customer service and
  not acknowledged; a person places or rejects it (API).
- A cancellation in the feed asks the order to cancel (the durable `request_cancel` signal,
  by the order's own rules: after shipment it is refused and noted on its timeline; the
  marketplace has had the shipment).
- A marketplace that is down fails the fetch, which Temporal retries with backoff for as
  long as it takes; nothing is skipped meanwhile.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from orderflow import search_attributes as sa
    from orderflow.models import CancelRequest, OrderStatus, OrderWorkflowInput
    from orderflow.models.activity_names import ActivityName
    from orderflow.models.marketplace import (
        FeedOrderRef,
        FeedPage,
        FeedRequest,
        MappedOrder,
        MarketplaceAck,
        MarketplacePollerInput,
    )

# A run hands over to the next after this many pages: its history stays short.
PAGES_PER_RUN = 200
_LOCAL_TIMEOUT = timedelta(seconds=15)
_DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)
_CALL_TIMEOUT = timedelta(seconds=30)
# A marketplace that is down is asked again, less and less often, until it answers.
_MARKETPLACE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
)


def poller_id(code: str) -> str:
    return f"marketplace-poller-{code}"


@workflow.defn
class MarketplacePollerWorkflow:
    @workflow.run
    async def run(self, data: MarketplacePollerInput) -> None:
        cursor, pages = data.cursor, data.pages
        while True:
            page: FeedPage = await workflow.execute_activity(
                ActivityName.FETCH_MARKETPLACE_ORDERS,
                FeedRequest(code=data.code, cursor=cursor, limit=data.page_size),
                start_to_close_timeout=_CALL_TIMEOUT,
                retry_policy=_MARKETPLACE_RETRY,
                result_type=FeedPage,
            )
            for raw in page.orders:
                await self._take(data, raw)
            if page.next_cursor is not None:
                cursor = page.next_cursor
            pages += 1
            info = workflow.info()
            if info.is_continue_as_new_suggested() or pages >= PAGES_PER_RUN:
                workflow.continue_as_new(data.model_copy(update={"cursor": cursor, "pages": 0}))
            if len(page.orders) < data.page_size:
                await workflow.sleep(data.poll_interval)

    async def _take(self, data: MarketplacePollerInput, raw: dict[str, object]) -> None:
        mapped: MappedOrder = await workflow.execute_local_activity(
            ActivityName.TAKE_MARKETPLACE_ORDER,
            FeedOrderRef(code=data.code, raw=raw),
            start_to_close_timeout=_LOCAL_TIMEOUT,
            retry_policy=_DB_RETRY,
            result_type=MappedOrder,
        )
        if mapped.rejected or mapped.problem is not None:
            return
        if mapped.status == "cancelled":
            if mapped.placed_order_id is not None:
                await self._cancel(mapped.placed_order_id)
            return
        order = mapped.order
        if order is None:
            return
        try:
            await workflow.start_child_workflow(
                "OrderWorkflow",
                OrderWorkflowInput(order=order, policy=data.policy, received_at=workflow.now()),
                id=f"order-{order.order_id}",
                task_queue=workflow.info().task_queue,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                # An order whose process has ended is never started again.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.CUSTOMER_ID, order.customer.id),
                        SearchAttributePair(sa.ORDER_STATUS, str(OrderStatus.RECEIVED)),
                        SearchAttributePair(sa.FLAGGED, False),
                    ]
                ),
            )
        except WorkflowAlreadyStartedError:
            pass  # placed before (a re-read page, or the run before this one)
        await workflow.execute_activity(
            ActivityName.ACKNOWLEDGE_MARKETPLACE_ORDER,
            MarketplaceAck(code=data.code, external_order_id=mapped.external_order_id),
            start_to_close_timeout=_CALL_TIMEOUT,
            retry_policy=_MARKETPLACE_RETRY,
        )

    async def _cancel(self, order_id: str) -> None:
        handle = workflow.get_external_workflow_handle(f"order-{order_id}")
        try:
            await handle.signal(
                "request_cancel",
                CancelRequest(reason="cancelled on the marketplace", requested_by="marketplace"),
            )
        except FailureError:
            # The order's process has ended (delivered, or cancelled already): nothing to do.
            pass
