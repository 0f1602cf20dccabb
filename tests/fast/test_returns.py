"""`ReturnWorkflow` on the time-skipping server under the strict sandbox, with stub activities
under the real names: every path of a return (refunded, not sent back, left uninspected,
decided by customer service) and the refund it computes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from orderflow.models.activity_names import ActivityName
from orderflow.models.messages import TrackingStatus, TrackingUpdate
from orderflow.models.returns import (
    InspectionReport,
    LineInspection,
    Restocked,
    ReturnDecision,
    ReturnDecisionInput,
    ReturnDecisionNeeded,
    ReturnExchangeInput,
    ReturnInspectionInput,
    ReturnLabel,
    ReturnLabelInput,
    ReturnLine,
    ReturnPolicy,
    ReturnRef,
    ReturnRefundInput,
    ReturnRefundOutcome,
    ReturnStatus,
    ReturnTracking,
    ReturnView,
    ReturnWorkflowInput,
)
from policies.returns import replacement_order
from tests.fast.replacement_stub import ReplacementOrder
from tests.helpers import order_json
from workers.order_worker import SANDBOX
from workflows.returns import ReturnWorkflow, workflow_id_for

POLICY = ReturnPolicy()


@dataclass
class Desk:
    """The return's stub activities: what each was called with."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    served: list[str] = field(default_factory=list)
    refuse_refund: bool = False
    # How many label bookings the carrier refuses for good before it books one.
    refuse_labels: int = 0

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def activities(self) -> list[Any]:
        @activity.defn(name=ActivityName.ASK_RETURN_DECISION)
        async def ask(data: ReturnDecisionNeeded) -> None:
            self.calls.append((ActivityName.ASK_RETURN_DECISION, data))

        @activity.defn(name=ActivityName.RECORD_RETURN_DECISION)
        async def decided(data: ReturnDecisionInput) -> None:
            self.calls.append((ActivityName.RECORD_RETURN_DECISION, data))

        @activity.defn(name=ActivityName.BOOK_RETURN_LABEL)
        async def label(data: ReturnLabelInput) -> ReturnLabel:
            self.calls.append((ActivityName.BOOK_RETURN_LABEL, data))
            if self.refuse_labels > 0:
                self.refuse_labels -= 1
                raise ApplicationError(
                    "carrier dhl refused the return label: 404",
                    type="CarrierRefused",
                    non_retryable=True,
                )
            return ReturnLabel(carrier="dhl", tracking_number="DHL-R1", label_url="http://l/1")

        @activity.defn(name=ActivityName.RECORD_RETURN_TRACKING)
        async def tracked(data: ReturnTracking) -> None:
            self.calls.append((ActivityName.RECORD_RETURN_TRACKING, data))

        @activity.defn(name=ActivityName.CLOSE_UNSENT_RETURN)
        async def unsent(data: ReturnRef) -> None:
            self.calls.append((ActivityName.CLOSE_UNSENT_RETURN, data))

        @activity.defn(name=ActivityName.NOTIFY_RETURN_INSPECTION_OVERDUE)
        async def overdue(data: ReturnRef) -> None:
            self.calls.append((ActivityName.NOTIFY_RETURN_INSPECTION_OVERDUE, data))

        @activity.defn(name=ActivityName.RECORD_RETURN_INSPECTION)
        async def inspected(data: ReturnInspectionInput) -> Restocked:
            self.calls.append((ActivityName.RECORD_RETURN_INSPECTION, data))
            restock = data.line.outcome == "restock"
            return Restocked(served_orders=self.served if restock else [])

        @activity.defn(name=ActivityName.RECORD_EXCHANGE)
        async def exchange(data: ReturnExchangeInput) -> None:
            self.calls.append((ActivityName.RECORD_EXCHANGE, data))

        @activity.defn(name=ActivityName.REFUND_RETURN)
        async def refund(data: ReturnRefundInput) -> ReturnRefundOutcome:
            self.calls.append((ActivityName.REFUND_RETURN, data))
            if self.refuse_refund:
                raise ApplicationError(
                    "refused as sent", type="PaymentRejected", non_retryable=True
                )
            if data.amount > 0:
                status = ReturnStatus.REFUNDED
            else:
                status = ReturnStatus.EXCHANGED if data.exchanged else ReturnStatus.CLOSED
            return ReturnRefundOutcome(status=status, amount=data.amount)

        return [ask, decided, label, tracked, unsent, overdue, inspected, refund, exchange]


@dataclass
class Running:
    env: WorkflowEnvironment
    desk: Desk
    task_queue: str
    started: list[WorkflowHandle[ReturnWorkflow, ReturnView]] = field(default_factory=list)

    async def start(self, **changes: Any) -> WorkflowHandle[ReturnWorkflow, ReturnView]:
        return_id = f"T-{uuid.uuid4().hex[:8]}-1"
        data = ReturnWorkflowInput(
            return_id=return_id,
            order_id=return_id[:-2],
            lines=[
                ReturnLine(sku="SKU-A", quantity=1, unit_price=Decimal("10.00")),
                ReturnLine(sku="SKU-B", quantity=2, unit_price=Decimal("5.00")),
            ],
            reason="too small",
            requested_by="storefront",
            shipping_share=Decimal("4.90"),
            policy=POLICY,
        ).model_copy(update=changes)
        handle = await self.env.client.start_workflow(
            ReturnWorkflow.run, data, id=workflow_id_for(return_id), task_queue=self.task_queue
        )
        self.started.append(handle)
        return handle

    async def stop_the_rest(self) -> None:
        """Terminate the returns a test left waiting. Left running after their worker is gone,
        a later test's wait lets this server skip to one of their timers, whose workflow task
        then waits for a worker forever, and the server's clock stands still."""
        for handle in self.started:
            # Terminated with a workflow task in flight, this server keeps time locked too:
            # each is let finish its task first.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                described = await handle.describe()
                if described.status != WorkflowExecutionStatus.RUNNING:
                    break
                if not described.raw_description.HasField("pending_workflow_task"):
                    await handle.terminate(reason="the test is over")
                    break
                await asyncio.sleep(0.05)


@pytest.fixture
async def running(fast_env: WorkflowEnvironment) -> AsyncIterator[Running]:
    desk = Desk()
    queue = f"returns-{uuid.uuid4().hex[:8]}"
    async with Worker(
        fast_env.client,
        task_queue=queue,
        workflows=[ReturnWorkflow, ReplacementOrder],
        activities=desk.activities(),
        workflow_runner=SANDBOX,
    ):
        running = Running(fast_env, desk, queue)
        yield running
        await running.stop_the_rest()


async def status_of(
    handle: WorkflowHandle[ReturnWorkflow, ReturnView], status: ReturnStatus
) -> ReturnView:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        view = await handle.query(ReturnWorkflow.view)
        if view.status == status:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"return never reached {status}")


def scan(status: TrackingStatus) -> TrackingUpdate:
    return TrackingUpdate(
        event_id=f"DHL-R1-{status}", tracking_number="DHL-R1", status=status, at=datetime.now(UTC)
    )


async def replacement_of(handle: WorkflowHandle[ReturnWorkflow, ReturnView]) -> str:
    """The replacement order's id, once the return has placed it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        placed = (await handle.query(ReturnWorkflow.view)).replacement_order_id
        if placed is not None:
            return placed
        await asyncio.sleep(0.1)
    raise AssertionError("the return never placed its replacement")


async def arrived(handle: WorkflowHandle[ReturnWorkflow, ReturnView]) -> None:
    await status_of(handle, ReturnStatus.LABEL_SENT)
    back: tuple[TrackingStatus, ...] = ("IN_TRANSIT", "DELIVERED")
    for status in back:
        await handle.signal(ReturnWorkflow.parcel_tracking, scan(status))
    await status_of(handle, ReturnStatus.ARRIVED)


async def test_a_return_inspected_in_two_reports_is_refunded_once(running: Running) -> None:
    running.desk.served = ["T-waiting"]
    handle = await running.start()
    await arrived(handle)
    first = await handle.execute_update(
        ReturnWorkflow.inspect,
        InspectionReport(lines=[LineInspection(sku="SKU-A", outcome="restock")]),
    )
    assert first.inspected == {"SKU-A": "restock"}
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            ReturnWorkflow.inspect,
            InspectionReport(lines=[LineInspection(sku="SKU-A", outcome="dispose")]),
        )
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            ReturnWorkflow.inspect,
            InspectionReport(lines=[LineInspection(sku="SKU-Z", outcome="dispose")]),
        )
    await handle.execute_update(
        ReturnWorkflow.inspect,
        InspectionReport(lines=[LineInspection(sku="SKU-B", outcome="dispose")]),
    )
    result = await handle.result()
    assert result.status == ReturnStatus.REFUNDED
    (refund,) = [d for n, d in running.desk.calls if n == ActivityName.REFUND_RETURN]
    # Both lines (disposed ones too, per policy) and the shipping share.
    assert refund.amount == Decimal("24.90")
    tracked = [d.status for n, d in running.desk.calls if n == ActivityName.RECORD_RETURN_TRACKING]
    assert tracked == ["IN_TRANSIT", "ARRIVED"]


async def test_disposed_lines_are_not_refunded_when_the_policy_says_so(running: Running) -> None:
    handle = await running.start(policy=ReturnPolicy(refund_disposed=False))
    await arrived(handle)
    await handle.execute_update(
        ReturnWorkflow.inspect,
        InspectionReport(
            lines=[
                LineInspection(sku="SKU-A", outcome="restock"),
                LineInspection(sku="SKU-B", outcome="dispose", note="worn"),
            ]
        ),
    )
    assert (await handle.result()).status == ReturnStatus.REFUNDED
    (refund,) = [d for n, d in running.desk.calls if n == ActivityName.REFUND_RETURN]
    assert refund.amount == Decimal("10.00")


async def test_a_parcel_not_sent_back_closes_the_return_after_the_send_back_time(
    running: Running,
) -> None:
    handle = await running.start()
    await status_of(handle, ReturnStatus.LABEL_SENT)
    await running.env.sleep(POLICY.send_back_within - timedelta(hours=1))
    assert ActivityName.CLOSE_UNSENT_RETURN not in running.desk.names()
    result = await handle.result()
    assert result.status == ReturnStatus.CLOSED
    assert ActivityName.REFUND_RETURN not in running.desk.names()


async def test_a_parcel_left_uninspected_tells_the_lead_once(running: Running) -> None:
    handle = await running.start()
    await arrived(handle)
    await running.env.sleep(POLICY.inspection_sla + timedelta(days=3))
    await handle.execute_update(
        ReturnWorkflow.inspect,
        InspectionReport(
            lines=[
                LineInspection(sku="SKU-A", outcome="restock"),
                LineInspection(sku="SKU-B", outcome="restock"),
            ]
        ),
    )
    assert (await handle.result()).status == ReturnStatus.REFUNDED
    assert running.desk.names().count(ActivityName.NOTIFY_RETURN_INSPECTION_OVERDUE) == 1


async def test_customer_service_decides_a_return_outside_the_rules(running: Running) -> None:
    refused = await running.start(decision_needed="not returnable: SKU-A")
    await status_of(refused, ReturnStatus.REQUESTED)
    with pytest.raises(WorkflowUpdateFailedError):
        await refused.execute_update(
            ReturnWorkflow.inspect,
            InspectionReport(lines=[LineInspection(sku="SKU-A", outcome="restock")]),
        )
    view = await refused.execute_update(
        ReturnWorkflow.decide, ReturnDecision(approve=False, note="hygiene article")
    )
    assert view.status == ReturnStatus.REJECTED
    assert (await refused.result()).status == ReturnStatus.REJECTED
    assert ActivityName.BOOK_RETURN_LABEL not in running.desk.names()

    approved = await running.start(decision_needed="not returnable: SKU-A")
    await status_of(approved, ReturnStatus.REQUESTED)
    await approved.execute_update(ReturnWorkflow.decide, ReturnDecision(approve=True))
    with pytest.raises(WorkflowUpdateFailedError):
        await approved.execute_update(ReturnWorkflow.decide, ReturnDecision(approve=False))
    await status_of(approved, ReturnStatus.LABEL_SENT)
    assert running.desk.names().count(ActivityName.ASK_RETURN_DECISION) == 2


async def test_a_refund_the_psp_refuses_leaves_the_return_inspected(running: Running) -> None:
    running.desk.refuse_refund = True
    handle = await running.start()
    await arrived(handle)
    await handle.execute_update(
        ReturnWorkflow.inspect,
        InspectionReport(
            lines=[
                LineInspection(sku="SKU-A", outcome="restock"),
                LineInspection(sku="SKU-B", outcome="restock"),
            ]
        ),
    )
    assert (await handle.result()).status == ReturnStatus.INSPECTED


def exchanging(running: Running, return_id: str) -> dict[str, Any]:
    """The changes to `Running.start` that make SKU-A an exchange with its replacement."""
    lines = [
        ReturnLine(sku="SKU-A", quantity=1, unit_price=Decimal("10.00"), resolution="exchange"),
        ReturnLine(sku="SKU-B", quantity=2, unit_price=Decimal("5.00")),
    ]
    original = order_json(order_id=return_id[:-2], items=[("SKU-A", 1), ("SKU-B", 2)])
    return {
        "lines": lines,
        "shipping_share": Decimal("0.00"),
        "replacement": replacement_order(original, return_id, lines[:1]),
    }


async def test_an_exchange_starts_its_replacement_on_approval_and_refunds_the_rest(
    running: Running,
) -> None:
    return_id = f"T-{uuid.uuid4().hex[:8]}-1"
    handle = await running.start(return_id=return_id, **exchanging(running, return_id))
    assert await replacement_of(handle) == f"{return_id}-EX"
    # Placed once the label is booked, so a return refused after all sends nothing.
    names = running.desk.names()
    assert names.index(ActivityName.BOOK_RETURN_LABEL) < names.index(ActivityName.RECORD_EXCHANGE)
    replacement = running.env.client.get_workflow_handle(f"order-{return_id}-EX")
    assert await replacement.result() == f"{return_id}-EX"
    await arrived(handle)
    await handle.execute_update(
        ReturnWorkflow.inspect,
        InspectionReport(
            lines=[
                LineInspection(sku="SKU-A", outcome="restock"),
                LineInspection(sku="SKU-B", outcome="restock"),
            ]
        ),
    )
    result = await handle.result()
    assert result.status == ReturnStatus.REFUNDED
    assert result.replacement_order_id == f"{return_id}-EX"
    (refund,) = [d for n, d in running.desk.calls if n == ActivityName.REFUND_RETURN]
    assert (refund.amount, refund.exchanged) == (Decimal("10.00"), True)
    assert running.desk.names().count(ActivityName.RECORD_EXCHANGE) == 1


async def test_an_exchange_on_arrival_waits_for_the_parcel(running: Running) -> None:
    on_arrival = ReturnPolicy(exchange_on="arrival")
    unsent_id = f"T-{uuid.uuid4().hex[:8]}-1"
    unsent = await running.start(
        return_id=unsent_id, policy=on_arrival, **exchanging(running, unsent_id)
    )
    # Never handed in: closed, and no replacement was ever placed.
    assert (await unsent.result()).status == ReturnStatus.CLOSED
    assert ActivityName.RECORD_EXCHANGE not in running.desk.names()

    return_id = f"T-{uuid.uuid4().hex[:8]}-1"
    handle = await running.start(
        return_id=return_id, policy=on_arrival, **exchanging(running, return_id)
    )
    await status_of(handle, ReturnStatus.LABEL_SENT)
    assert ActivityName.RECORD_EXCHANGE not in running.desk.names()
    await arrived(handle)
    assert await replacement_of(handle) == f"{return_id}-EX"
    assert running.desk.names().count(ActivityName.RECORD_EXCHANGE) == 1


async def test_a_label_the_carrier_refuses_goes_to_customer_service(running: Running) -> None:
    running.desk.refuse_labels = 2
    handle = await running.start()
    await status_of(handle, ReturnStatus.REQUESTED)
    (asked,) = [d for n, d in running.desk.calls if n == ActivityName.ASK_RETURN_DECISION]
    assert asked.round == 1 and "refused the return label" in asked.why
    # Booked again on approval: refused once more, asked again, approved, booked.
    await handle.execute_update(ReturnWorkflow.decide, ReturnDecision(approve=True))
    await status_of(handle, ReturnStatus.REQUESTED)
    await handle.execute_update(ReturnWorkflow.decide, ReturnDecision(approve=True))
    await status_of(handle, ReturnStatus.LABEL_SENT)
    rounds = [d.round for n, d in running.desk.calls if n == ActivityName.RECORD_RETURN_DECISION]
    assert rounds == [1, 2]
    assert running.desk.names().count(ActivityName.BOOK_RETURN_LABEL) == 3

    running.desk.refuse_labels = 1
    refused = await running.start()
    await status_of(refused, ReturnStatus.REQUESTED)
    await refused.execute_update(
        ReturnWorkflow.decide, ReturnDecision(approve=False, note="no carrier serves it")
    )
    assert (await refused.result()).status == ReturnStatus.REJECTED
