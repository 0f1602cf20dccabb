"""Pre-orders at production durations: an order with a product not yet released waits for
the release without reserving, moves when purchasing moves the date (the customer told),
can be cancelled while it waits, and then goes on as any order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from orderflow.models import Awaiting, OrderStatus
from orderflow.models.activity_names import ActivityName
from orderflow.models.messages import ReleaseDateChange
from tests.fast.harness import PRODUCTION, Harness
from tests.fast.test_payment import _authorised, _delivered
from workflows.order import OrderWorkflow

SLACK = timedelta(minutes=5)


async def _pre_order(harness: Harness, release_in: timedelta, *, authorised: bool = False) -> str:
    shop = harness.shop
    shop.order_type, shop.department = "pre_sale", "purchasing"
    shop.release_at = await harness.now() + release_in
    order = await _authorised(harness) if authorised else harness.order()
    placed = await harness.place(order, policy=PRODUCTION)
    await harness.until(placed.order_id, lambda v: v.awaiting == Awaiting.RELEASE, "the wait")
    return placed.order_id


async def test_a_pre_order_waits_for_the_release_then_reserves_and_ships(
    harness: Harness,
) -> None:
    shop = harness.shop
    oid = await _pre_order(harness, timedelta(days=10))
    view = await harness.view(oid)
    assert view.status == OrderStatus.APPROVED
    assert shop.count(ActivityName.RESERVE_STOCK) == 0, "nothing reserved while it waits"
    assert "customer: pre-order waits for the release" in shop.told

    await harness.sleep(timedelta(days=10) - SLACK)
    await harness.settle(oid)
    assert shop.count(ActivityName.RESERVE_STOCK) == 0, "not before the release"
    await harness.sleep(2 * SLACK)
    await harness.called(ActivityName.RESERVE_STOCK)
    assert shop.count(ActivityName.RELEASE_PRE_ORDER) == 1
    assert (await _delivered(harness, oid)).status == OrderStatus.COMPLETED
    names = shop.names()
    assert names.index(ActivityName.RELEASE_PRE_ORDER) < names.index(ActivityName.RESERVE_STOCK)


async def test_purchasing_moves_the_release_and_the_customer_is_told(harness: Harness) -> None:
    shop = harness.shop
    oid = await _pre_order(harness, timedelta(days=5))
    # The supplier is late: the release moves three days later.
    shop.release_at = await harness.now() + timedelta(days=8)
    view = await harness.handle(oid).execute_update(
        OrderWorkflow.move_release, ReleaseDateChange(by="pat", note="supplier late")
    )
    assert view.awaiting == Awaiting.RELEASE
    (move,) = shop.inputs(ActivityName.MOVE_RELEASE)
    assert (move.move_no, move.by, move.note) == (1, "pat", "supplier late")
    assert "customer: release moved" in shop.told

    await harness.sleep(timedelta(days=5) + SLACK)
    await harness.settle(oid)
    assert shop.count(ActivityName.RESERVE_STOCK) == 0, "the old date no longer counts"
    await harness.sleep(timedelta(days=3))
    await harness.called(ActivityName.RESERVE_STOCK)
    # Not waiting any more: a move is refused.
    with pytest.raises(WorkflowUpdateFailedError):
        await harness.handle(oid).execute_update(OrderWorkflow.move_release, ReleaseDateChange())


async def test_a_waiting_pre_order_can_be_cancelled_and_nothing_was_reserved(
    harness: Harness,
) -> None:
    shop = harness.shop
    oid = await _pre_order(harness, timedelta(days=30))
    await harness.sleep(timedelta(days=2))
    await harness.storefront.cancel(oid, "found it elsewhere")
    final = await harness.result(oid)
    assert final.status == OrderStatus.CANCELLED
    assert shop.count(ActivityName.RESERVE_STOCK) == 0
    assert shop.count(ActivityName.RELEASE_PRE_ORDER) == 0


async def test_an_authorisation_is_renewed_while_a_pre_order_waits(harness: Harness) -> None:
    shop = harness.shop
    oid = await _pre_order(harness, timedelta(days=10), authorised=True)
    # The checkout's authorisation lasts a week: renewed a day before it lapses.
    await harness.sleep(timedelta(days=6) + SLACK)
    await harness.called(ActivityName.REAUTHORIZE_PAYMENT)
    assert (await harness.view(oid)).awaiting == Awaiting.RELEASE
    await harness.sleep(timedelta(days=4))
    await harness.called(ActivityName.RESERVE_STOCK)
    assert (await _delivered(harness, oid)).status == OrderStatus.COMPLETED
    assert shop.count(ActivityName.CAPTURE_PAYMENT) == 1


async def test_an_order_whose_products_are_out_already_does_not_wait(harness: Harness) -> None:
    shop = harness.shop
    shop.order_type, shop.department = "pre_sale", "purchasing"
    shop.release_at = None
    order = await harness.place(policy=PRODUCTION)
    assert (await _delivered(harness, order.order_id)).status == OrderStatus.COMPLETED
    assert shop.count(ActivityName.HOLD_FOR_RELEASE) == 1
    assert shop.count(ActivityName.RELEASE_PRE_ORDER) == 0
