"""The cancellation saga on the real stack: a cancel at every step before shipment undoes what
was done (pick task, reservations, purchase-request share, payment) exactly once; after the
hand-over to the carrier it is refused; a cancel racing a warehouse report ends in one of
two consistent outcomes, and the recorded histories replay deterministically."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from db.repositories import inventory
from orderflow.models import OrderPolicy, PackedReport, PickedReport
from tests.helpers import CONVERTER, events_of, order_json, wait_for_status
from tests.integration.fulfilment_support import (
    PRICE,
    add_product,
    carrier_control,
    notifications_of,
    on_hand,
    place,
    post_tracking,
    tracking_body,
    wait_awaiting,
)
from tests.servers import Stack, running_stack
from workers.order_worker import SANDBOX
from workflows.order import OrderWorkflow

pytestmark = pytest.mark.integration

MANUAL = OrderPolicy.instant(auto_warehouse=False)


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=MANUAL) as running:
        yield running


async def _cancel(stack: Stack, order_id: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await stack.http(
        "POST",
        f"/orders/{order_id}/cancel",
        role=None if token else "storefront",
        headers=headers,
        json={"reason": "changed my mind"},
    )
    assert response.status_code == 200, response.text
    result: dict = response.json()
    return result


async def _assert_nothing_left(stack: Stack, order_id: str, *, refunded: Decimal) -> None:
    """No reservation, queue place, request share or payment is left behind, each undo once."""
    assert await wait_for_status(stack.pool, order_id, "CANCELLED") == "CANCELLED"
    held = await stack.pool.fetchval(
        "SELECT count(*) FROM reservations WHERE order_id = $1 AND status = 'held'", order_id
    )
    waiting = await stack.pool.fetchval(
        "SELECT count(*) FROM backorders WHERE order_id = $1 AND status = 'waiting'", order_id
    )
    assert (held, waiting) == (0, 0)
    refunds = await stack.pool.fetch("SELECT amount FROM refunds WHERE order_id = $1", order_id)
    assert [r["amount"] for r in refunds] == [refunded]
    task = await stack.pool.fetchval(
        "SELECT status FROM warehouse_tasks WHERE order_id = $1", order_id
    )
    assert task in (None, "cancelled")
    kinds = [e["kind"] for e in await events_of(stack.pool, order_id)]
    assert kinds.count("order_cancelled") == 1 and kinds.count("payment_refunded") == 1
    assert kinds.index("payment_refunded") < kinds.index("order_cancelled")
    assert len(await notifications_of(stack, order_id, "order_cancelled")) == 1
    assert await inventory.invariant_violations(stack.pool) == []
    final = await stack.storefront.handle(order_id).result()
    assert final.status == "CANCELLED"


async def test_cancel_while_pending_review(stack: Stack) -> None:
    body = order_json(payment_status="failed")
    order_id = body["order_id"]
    placed = await stack.http("POST", "/orders", json=body)
    await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")
    result = await _cancel(stack, order_id, token=placed.json()["access_token"])
    assert result["status"] == "CANCELLED" and result["released_lines"] == 0
    # The payment had failed: nothing to pay back, but the ledger says so.
    await _assert_nothing_left(stack, order_id, refunded=Decimal("0.00"))
    review_task = await stack.pool.fetchval(
        "SELECT status FROM review_tasks WHERE order_id = $1", order_id
    )
    assert review_task == "cancelled"
    # A decision now is a 409: the order awaits none.
    late = await stack.http(
        "POST", f"/reviews/{order_id}/decision", role="reviewer", json={"decision": "approve"}
    )
    assert late.status_code == 409


async def test_cancel_while_backordered_withdraws_the_purchase_request_share(stack: Stack) -> None:
    sku = await add_product(stack, on_hand=1)
    order, _ = await place(stack, MANUAL, [(sku, 3)])
    await wait_for_status(stack.pool, order.order_id, "BACKORDERED")
    request = await stack.pool.fetchrow(
        "SELECT id, quantity FROM purchase_requests WHERE sku = $1 AND status = 'open'", sku
    )
    assert request is not None and request["quantity"] >= 2

    result = await _cancel(stack, order.order_id)
    assert Decimal(result["refunded"]) == Decimal(PRICE) * 3
    await _assert_nothing_left(stack, order.order_id, refunded=Decimal(PRICE) * 3)
    after = await stack.pool.fetchrow(
        "SELECT quantity, status FROM purchase_requests WHERE id = $1", request["id"]
    )
    # Nobody else wanted the SKU: the request is withdrawn with the order's share.
    assert after["status"] == "cancelled" or after["quantity"] == request["quantity"] - 2
    assert await on_hand(stack, sku) == (1, 0)
    withdrawn = await stack.pool.fetchval(
        "SELECT count(*) FROM backorders WHERE order_id = $1 AND status = 'withdrawn'",
        order.order_id,
    )
    assert withdrawn >= 1


async def test_cancel_while_waiting_to_be_picked(stack: Stack) -> None:
    sku = await add_product(stack, on_hand=10)
    order, _ = await place(stack, MANUAL, [(sku, 4)])
    await wait_awaiting(stack, order.order_id, "picked")
    assert await on_hand(stack, sku) == (10, 4)
    result = await _cancel(stack, order.order_id)
    assert result["released_lines"] == 1
    await _assert_nothing_left(stack, order.order_id, refunded=Decimal(PRICE) * 4)
    assert await on_hand(stack, sku) == (10, 0)
    tasks = (await stack.http("GET", "/warehouse/tasks", role="warehouse")).json()
    assert order.order_id not in [t["order_id"] for t in tasks]
    # The warehouse cannot report on a cancelled order.
    late = await stack.http("POST", f"/warehouse/tasks/{order.order_id}/picked", role="warehouse")
    assert late.status_code == 409


async def test_cancel_after_picked_before_packed(stack: Stack) -> None:
    sku = await add_product(stack, on_hand=10)
    order, _ = await place(stack, MANUAL, [(sku, 2)])
    await wait_awaiting(stack, order.order_id, "picked")
    await stack.storefront.report_picked(order.order_id, PickedReport(by="pia"))
    await wait_awaiting(stack, order.order_id, "packed")
    await _cancel(stack, order.order_id)
    await _assert_nothing_left(stack, order.order_id, refunded=Decimal(PRICE) * 2)
    undone = await stack.pool.fetchrow(
        "SELECT details FROM order_events WHERE order_id = $1 AND kind = 'pick_task_cancelled'",
        order.order_id,
    )
    assert undone["details"] == {"task_was": "picked"}
    assert await on_hand(stack, sku) == (10, 0)


async def test_a_parcel_no_carrier_takes_waits_packed_and_can_be_cancelled(stack: Stack) -> None:
    # 80 kg: more than any demo carrier takes.
    sku = await add_product(stack, weight_kg="80.000", on_hand=5)
    order, _ = await place(stack, MANUAL, [(sku, 1)])
    order_id = order.order_id
    await wait_awaiting(stack, order_id, "picked")
    await stack.storefront.report_picked(order_id, PickedReport())
    await wait_awaiting(stack, order_id, "packed")
    await stack.storefront.report_packed(order_id, PackedReport(weight_kg=81.5))
    view = await wait_awaiting(stack, order_id, "carrier_booking")
    assert view.status == "PACKED"
    assert len(await notifications_of(stack, order_id, "booking_refused")) == 1

    # Logistics tries again; still no carrier: it waits again, on record twice.
    retried = await stack.http("POST", f"/logistics/{order_id}/rebook", role="logistics", json={})
    assert retried.status_code == 200, retried.text
    assert retried.json()["awaiting"] == "carrier_booking"
    assert retried.json()["status"] == "PACKED"
    kinds = [e["kind"] for e in await events_of(stack.pool, order_id)]
    assert kinds.count("booking_refused") == 2
    wrong_role = await stack.http(
        "POST", f"/logistics/{order_id}/rebook", role="warehouse", json={}
    )
    assert wrong_role.status_code == 403

    await _cancel(stack, order_id)
    await _assert_nothing_left(stack, order_id, refunded=Decimal(PRICE))
    undone = await stack.pool.fetchrow(
        "SELECT details FROM order_events WHERE order_id = $1 AND kind = 'pick_task_cancelled'",
        order_id,
    )
    assert undone["details"] == {"task_was": "packed"}
    assert await on_hand(stack, sku) == (5, 0)
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM shipments WHERE order_id = $1", order_id)
        == 0
    )
    # Rebooking a cancelled order is refused.
    late = await stack.http("POST", f"/logistics/{order_id}/rebook", role="logistics", json={})
    assert late.status_code == 409


async def test_a_repeated_cancel_returns_the_same_result_and_undoes_once(stack: Stack) -> None:
    sku = await add_product(stack, on_hand=10)
    order, _ = await place(stack, MANUAL, [(sku, 1)])
    await wait_awaiting(stack, order.order_id, "picked")
    results = await asyncio.gather(
        *(stack.storefront.cancel(order.order_id, "twice") for _ in range(3)),
        return_exceptions=True,
    )
    for r in results:
        if isinstance(r, BaseException):
            # An Update that reaches the server as the workflow closes is aborted (404): the
            # API answers 409 "its process has ended".
            assert isinstance(r, RPCError) and r.status == RPCStatusCode.NOT_FOUND, r
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert accepted and all(r == accepted[0] for r in accepted)
    await _assert_nothing_left(stack, order.order_id, refunded=Decimal(PRICE))
    # A storefront retrying through the API after the process ended gets the same answer.
    retried = await stack.http(
        "POST", f"/orders/{order.order_id}/cancel", role="storefront", json={"reason": "retry"}
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "CANCELLED"
    assert Decimal(retried.json()["refunded"]) == accepted[0].refunded
    assert retried.json()["released_lines"] == accepted[0].released_lines
    await _assert_nothing_left(stack, order.order_id, refunded=Decimal(PRICE))


async def test_cancel_after_shipment_is_refused_and_changes_nothing(stack: Stack) -> None:
    sku = await add_product(stack, on_hand=10)
    await carrier_control(stack, mode="normal", event_interval_seconds=3600)
    try:
        order, _ = await place(stack, OrderPolicy.instant(), [(sku, 2)])
        view = await wait_awaiting(stack, order.order_id, "delivery")
    finally:
        await carrier_control(stack, reset=True)
    assert view.status == "SHIPPED"
    refused = await stack.http(
        "POST", f"/orders/{order.order_id}/cancel", json={"reason": "too late?"}
    )
    assert refused.status_code == 409
    assert "shipped" in refused.json()["detail"]
    assert await on_hand(stack, sku) == (8, 0), "the goods left: consumed, not released"
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM refunds WHERE order_id = $1", order.order_id
        )
        == 0
    )
    assert (await stack.storefront.get_status(order.order_id)).status == "SHIPPED"

    assert view.carrier and view.tracking_number
    delivered = await post_tracking(
        stack, view.carrier, tracking_body(view.tracking_number, "DELIVERED")
    )
    assert delivered.status_code == 200
    await wait_for_status(stack.pool, order.order_id, "COMPLETED")


async def test_a_cancel_racing_the_packed_report_ends_consistently_and_replays(
    stack: Stack,
) -> None:
    sku = await add_product(stack, on_hand=50)
    orders = [(await place(stack, MANUAL, [(sku, 1)]))[0] for _ in range(4)]
    for order in orders:
        await wait_awaiting(stack, order.order_id, "picked")
        await stack.storefront.report_picked(order.order_id, PickedReport())
        await wait_awaiting(stack, order.order_id, "packed")

    async def cancel(order_id: str) -> str:
        try:
            await stack.storefront.cancel(order_id, "race")
        except WorkflowUpdateFailedError:
            return "refused"
        return "accepted"

    # A report that reaches the server as the cancelled order closes is aborted (404).

    async def pack(order_id: str) -> str:
        try:
            view = await stack.storefront.report_packed(order_id, PackedReport(weight_kg=0.8))
        except WorkflowUpdateFailedError:
            return "refused"
        except RPCError as exc:
            assert exc.status == RPCStatusCode.NOT_FOUND, exc
            return "closed"
        return str(view.status)

    outcomes = await asyncio.gather(
        *(asyncio.gather(cancel(o.order_id), pack(o.order_id)) for o in orders)
    )
    for order, (cancelled, _packed) in zip(orders, outcomes, strict=True):
        order_id = order.order_id
        if cancelled == "accepted":
            await _assert_nothing_left(stack, order_id, refunded=Decimal(PRICE))
            assert (
                await stack.pool.fetchval(
                    "SELECT count(*) FROM shipments WHERE order_id = $1", order_id
                )
                == 0
            ), "a cancelled order never reaches a carrier"
        else:
            # The parcel was already being handed over: it ships, nothing is undone.
            await wait_for_status(stack.pool, order_id, "COMPLETED")
            kinds = [e["kind"] for e in await events_of(stack.pool, order_id)]
            assert "order_cancelled" not in kinds and "payment_refunded" not in kinds
    assert await inventory.invariant_violations(stack.pool) == []

    # Whatever happened, it replays the same way from the recorded history.
    replayer = Replayer(
        workflows=[OrderWorkflow],
        data_converter=CONVERTER,
        workflow_runner=SANDBOX,
    )
    for order in orders:
        history = await stack.storefront.handle(order.order_id).fetch_history()
        await replayer.replay_workflow(history)
