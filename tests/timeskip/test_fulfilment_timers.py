"""Steps 5 to 8 at production durations (hours and days, skipped by the test server): the pick
task's SLA, delivery follow-ups and their escalation, a parcel lost for good or reported lost
by the carrier, completion after the quiet period (and held by a complaint), and the review
window open and closed.

Each test has a test server of its own: the carrier simulator dates its bookings by the wall
clock, so the server's clock must start where the wall clock is, not days ahead after other
tests skipped time. The carrier books but stays silent (normal mode, hour-long intervals) or
loses the parcel; the tests post its tracking events, signed, to the webhook themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.access import customer_token
from orderflow.models import OrderPolicy
from tests.helpers import wait_for_status
from tests.integration.fulfilment_support import (
    add_product,
    carrier_control,
    notifications_of,
    place,
    post_tracking,
    tracking_body,
    wait_awaiting,
    wait_until,
)
from tests.servers import Stack, running_stack
from tests.time_skipping import start_skipping_server

# Production waits; only the warehouse is automatic (and instant).
PRODUCTION = OrderPolicy(auto_warehouse=True)


@dataclass
class Timed:
    stack: Stack
    env: WorkflowEnvironment

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def sleep(self, duration: timedelta) -> None:
        await self.env.sleep(duration)


@pytest.fixture
async def timed(database_url: str) -> AsyncIterator[Timed]:
    env = await start_skipping_server()
    try:
        async with running_stack(env, database_url, policy=PRODUCTION) as stack:
            await carrier_control(stack, mode="normal", event_interval_seconds=3600)
            yield Timed(stack, env)
    finally:
        await env.shutdown()


async def _count(stack: Stack, sql: str, *args: Any) -> int:
    value: int = await stack.pool.fetchval(sql, *args)
    return value


async def _follow_ups(stack: Stack, order_id: str) -> list[Any]:
    return await stack.pool.fetch(
        """SELECT attempt, escalated, status, resolution FROM follow_ups
           WHERE order_id = $1 ORDER BY booking_no, attempt""",
        order_id,
    )


async def _settled(stack: Stack, order_id: str, n: int) -> list[Any]:
    """The order's follow-ups once there are `n` (a fired timer's activity runs in real time)."""

    async def check() -> list[Any] | None:
        rows = await _follow_ups(stack, order_id)
        return rows if len(rows) == n else None

    rows: list[Any] = await wait_until(check, what=f"{n} follow-ups of {order_id}")
    return rows


async def _quiet(stack: Stack) -> None:
    """Real time for anything a timer would have set off (to show that nothing did)."""
    await asyncio.sleep(0.5)


async def _shipped(timed: Timed, policy: OrderPolicy) -> tuple[str, str, str, datetime]:
    """An order handed to a silent carrier: (order, carrier, tracking, follow-up due)."""
    sku = await add_product(timed.stack)
    order, _ = await place(timed.stack, policy, [(sku, 1)])
    view = await wait_awaiting(timed.stack, order.order_id, "delivery")
    assert view.carrier and view.tracking_number
    expected = await timed.stack.pool.fetchval(
        "SELECT expected_delivery FROM shipments WHERE order_id = $1", order.order_id
    )
    return order.order_id, view.carrier, view.tracking_number, expected + policy.delivery_grace


async def test_pick_task_sla_notifies_the_warehouse_lead_after_four_hours(timed: Timed) -> None:
    stack = timed.stack
    policy = PRODUCTION.model_copy(update={"auto_warehouse": False})
    sku = await add_product(stack)
    order, _ = await place(stack, policy, [(sku, 1)])
    await wait_awaiting(stack, order.order_id, "picked")
    task = await stack.pool.fetchrow(
        "SELECT opened_at, due_at FROM warehouse_tasks WHERE order_id = $1", order.order_id
    )
    assert task["due_at"] - task["opened_at"] == timedelta(hours=4)

    await timed.sleep(timedelta(hours=3, minutes=50))
    await _quiet(stack)
    assert await notifications_of(stack, order.order_id, "pick_task_overdue") == []

    await timed.sleep(timedelta(minutes=15))
    notices = await wait_until(
        lambda: notifications_of(stack, order.order_id, "pick_task_overdue"), what="overdue"
    )
    assert [n["recipient"] for n in notices] == ["warehouse-lead@shop.example"]
    view = await stack.storefront.get_status(order.order_id)
    assert view.status == "PICKING" and view.awaiting == "picked"

    # Once notified is enough: a day later there is still one notice.
    await timed.sleep(timedelta(days=1))
    await _quiet(stack)
    assert len(await notifications_of(stack, order.order_id, "pick_task_overdue")) == 1
    result = await stack.storefront.cancel(order.order_id, "never picked")
    assert result.status == "CANCELLED"


async def test_late_parcel_is_followed_up_daily_and_escalated_at_the_third(timed: Timed) -> None:
    stack = timed.stack
    order_id, carrier, parcel, due = await _shipped(timed, PRODUCTION)

    await timed.sleep(due - await timed.now() - timedelta(hours=1))
    await _quiet(stack)
    assert await _follow_ups(stack, order_id) == [], "not before expected delivery + grace"

    await timed.sleep(timedelta(hours=2))
    first = await _settled(stack, order_id, 1)
    assert (first[0]["attempt"], first[0]["escalated"]) == (1, False)
    await timed.sleep(timedelta(days=1))
    second = await _settled(stack, order_id, 2)
    assert second[1]["escalated"] is False
    await timed.sleep(timedelta(days=1))
    third = await _settled(stack, order_id, 3)
    assert third[2]["escalated"] is True

    late = await notifications_of(stack, order_id, "delivery_delayed")
    assert len(late) == 3, "the customer is told at every follow-up"
    chasers = await notifications_of(stack, order_id, "delivery_follow_up")
    assert [n["recipient"] for n in chasers] == [
        "logistics-lead@shop.example",
        "logistics-lead@shop.example",
        "logistics-supervisor@shop.example",
    ]
    timeline = (await stack.storefront.get_status(order_id)).timeline
    asked = [t.details for t in timeline if t.details.get("note") == "delivery follow-up"]
    assert [d["carrier_status"] for d in asked] == ["BOOKED"] * 3

    arrived = await post_tracking(stack, carrier, tracking_body(parcel, "DELIVERED"))
    assert arrived.json()["outcome"] == "applied"
    await wait_for_status(stack.pool, order_id, "DELIVERED")
    rows = await _follow_ups(stack, order_id)
    assert {(r["status"], r["resolution"]) for r in rows} == {("resolved", "delivered")}
    # No fourth follow-up for a delivered parcel.
    await timed.sleep(timedelta(days=2))
    await _quiet(stack)
    assert len(await _follow_ups(stack, order_id)) == 3


async def test_a_parcel_missing_after_the_last_follow_up_is_lost_until_refunded(
    timed: Timed,
) -> None:
    stack = timed.stack
    policy = PRODUCTION.model_copy(
        update={"followup_escalate_after": 2, "followup_max_attempts": 3}
    )
    order_id, _, parcel, due = await _shipped(timed, policy)
    await timed.sleep(due - await timed.now() + timedelta(hours=1))
    await _settled(stack, order_id, 1)
    for n in (2, 3):
        await timed.sleep(timedelta(days=1))
        await _settled(stack, order_id, n)

    await wait_awaiting(stack, order_id, "lost_parcel_resolution")
    case = await stack.pool.fetchrow(
        "SELECT status, reason, tracking_number FROM lost_parcels WHERE order_id = $1", order_id
    )
    assert dict(case) == {
        "status": "open",
        "reason": "not delivered after 3 follow-ups",
        "tracking_number": parcel,
    }
    # The case waits for logistics, however long: no more follow-ups meanwhile.
    await timed.sleep(timedelta(days=10))
    await _quiet(stack)
    assert len(await _follow_ups(stack, order_id)) == 3
    assert (await stack.storefront.get_status(order_id)).awaiting == "lost_parcel_resolution"

    refunded = await stack.http(
        "POST", f"/logistics/{order_id}/resolution", role="logistics", json={"action": "refund"}
    )
    assert refunded.status_code == 200, refunded.text
    assert (await stack.storefront.handle(order_id).result()).status == "CANCELLED"
    rows = await _follow_ups(stack, order_id)
    assert {(r["status"], r["resolution"]) for r in rows} == {("resolved", "refunded")}


async def test_a_parcel_the_carrier_loses_is_reshipped_and_completes(timed: Timed) -> None:
    stack = timed.stack
    await carrier_control(stack, mode="lose", event_interval_seconds=0.1)
    try:
        order_id, _, parcel, due = await _shipped(timed, PRODUCTION)
        # The carrier scans it once, then it vanishes.
        await wait_for_status(stack.pool, order_id, "IN_TRANSIT")
    finally:
        await carrier_control(stack, mode="normal", event_interval_seconds=3600)

    await timed.sleep(due - await timed.now() + timedelta(hours=1))
    await wait_awaiting(stack, order_id, "lost_parcel_resolution")
    asked = await _follow_ups(stack, order_id)
    assert len(asked) == 1
    reason = await stack.pool.fetchval(
        "SELECT reason FROM lost_parcels WHERE order_id = $1", order_id
    )
    assert reason == "the carrier reports the parcel lost"

    reshipped = await stack.http(
        "POST", f"/logistics/{order_id}/resolution", role="logistics", json={"action": "reship"}
    )
    assert reshipped.status_code == 200, reshipped.text
    replacement = reshipped.json()["tracking_number"]
    assert replacement != parcel
    arrived = await post_tracking(
        stack, reshipped.json()["carrier"], tracking_body(replacement, "DELIVERED")
    )
    assert arrived.json()["outcome"] == "applied"
    await wait_for_status(stack.pool, order_id, "DELIVERED")

    await timed.sleep(PRODUCTION.quiet_period + timedelta(minutes=5))
    await wait_for_status(stack.pool, order_id, "COMPLETED")


async def test_completion_after_the_quiet_period_and_a_review_invitation(timed: Timed) -> None:
    stack = timed.stack
    order_id, carrier, parcel, _ = await _shipped(timed, PRODUCTION)
    await post_tracking(stack, carrier, tracking_body(parcel, "DELIVERED"))
    await wait_awaiting(stack, order_id, "receipt_confirmation")

    await timed.sleep(PRODUCTION.quiet_period - timedelta(hours=1))
    await _quiet(stack)
    assert (
        await stack.pool.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id)
        == "DELIVERED"
    )
    assert await notifications_of(stack, order_id, "review_invitation") == []

    await timed.sleep(timedelta(hours=2))
    await wait_for_status(stack.pool, order_id, "COMPLETED")
    how = await stack.pool.fetchval(
        "SELECT details->>'how' FROM order_events WHERE order_id = $1 AND kind = 'order_completed'",
        order_id,
    )
    assert how == "quiet_period"
    assert len(await notifications_of(stack, order_id, "review_invitation")) == 1


async def test_a_complaint_holds_completion_past_the_quiet_period(timed: Timed) -> None:
    stack = timed.stack
    order_id, carrier, parcel, _ = await _shipped(timed, PRODUCTION)
    await post_tracking(stack, carrier, tracking_body(parcel, "DELIVERED"))
    await wait_awaiting(stack, order_id, "receipt_confirmation")
    await timed.sleep(timedelta(days=1))
    token = customer_token(stack.settings.customer_token_secret, order_id)
    complaint = await stack.http(
        "POST",
        f"/orders/{order_id}/feedback",
        role=None,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "crushed-box"},
        json={"category": "delivery", "message": "The box was crushed."},
    )
    assert complaint.json()["holds_completion"] is True

    await timed.sleep(timedelta(days=5))
    view = await wait_awaiting(stack, order_id, "complaint_resolution")
    assert view.status == "DELIVERED"
    resolved = await stack.http(
        "POST",
        f"/feedback/{complaint.json()['ticket_id']}/resolution",
        role="logistics",
        json={"note": "Refunded the damaged item."},
    )
    assert resolved.status_code == 200
    await wait_for_status(stack.pool, order_id, "COMPLETED")


async def test_reviews_within_fourteen_days_and_not_after(timed: Timed) -> None:
    stack = timed.stack
    policy = PRODUCTION.model_copy(update={"quiet_period": timedelta(0)})
    orders = []
    for _ in range(2):
        order_id, carrier, parcel, _ = await _shipped(timed, policy)
        await post_tracking(stack, carrier, tracking_body(parcel, "DELIVERED"))
        await wait_awaiting(stack, order_id, "review")
        orders.append(order_id)
    reviewed, unreviewed = orders

    await timed.sleep(timedelta(days=13, hours=23))
    within = await stack.http(
        "POST", f"/orders/{reviewed}/review", json={"rating": 4, "comment": "fine"}
    )
    assert within.status_code == 201, within.text

    await timed.sleep(timedelta(hours=2))
    for order_id in orders:
        final = await stack.storefront.handle(order_id).result()
        assert final.status == "COMPLETED" and final.awaiting is None
    closed = await stack.http("POST", f"/orders/{unreviewed}/review", json={"rating": 2})
    assert closed.status_code == 409
    stored = await stack.pool.fetch(
        "SELECT order_id, rating FROM product_reviews WHERE order_id = ANY($1::text[])", orders
    )
    assert [(r["order_id"], r["rating"]) for r in stored] == [(reviewed, 4)]
