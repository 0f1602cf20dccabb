"""Department queues and stuck orders on the real stack: orders wait on people with short
SLAs, and each department sees what waits on it, oldest first, against its SLA."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from temporalio.testing import WorkflowEnvironment

from db.repositories import catalogue
from orderflow.models import OrderPolicy
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

# People's SLAs of a second, so waits pass them during the test; the deadline stays far.
POLICY = OrderPolicy(
    review_sla=timedelta(seconds=1),
    review_deadline=timedelta(hours=1),
    pick_sla=timedelta(seconds=1),
    auto_warehouse=False,
    quiet_period=timedelta(0),
    review_window=timedelta(0),
)


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=POLICY) as running:
        yield running


async def _place(stack: Stack, body: dict) -> str:
    response = await stack.http("POST", "/orders", json=body)
    assert response.status_code == 202, response.text
    return str(body["order_id"])


async def _cancel(stack: Stack, *order_ids: str) -> None:
    for order_id in order_ids:
        response = await stack.http(
            "POST", f"/orders/{order_id}/cancel", role="admin", json={"reason": "test over"}
        )
        assert response.status_code == 200, response.text


async def _queue(stack: Stack, department: str, role: str = "admin") -> dict:
    response = await stack.http("GET", f"/departments/{department}/queue", role=role)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_each_department_sees_its_own_queue_oldest_first(stack: Stack) -> None:
    first_flagged = await _place(stack, order_json(payment_status="failed"))
    await wait_for_status(stack.pool, first_flagged, "PENDING_REVIEW")
    second_flagged = await _place(stack, order_json(payment_status="failed"))
    to_pick = await _place(stack, order_json())
    await wait_for_status(stack.pool, second_flagged, "PENDING_REVIEW")
    await wait_for_status(stack.pool, to_pick, "PICKING")
    await asyncio.sleep(1.5)  # past the review and pick SLAs

    risk = await _queue(stack, "risk", role="reviewer")
    assert risk["department"] == "risk" and risk["roles"] == ["reviewer", "admin"]
    reviews = [i for i in risk["items"] if i["kind"] == "review_task"]
    mine = [i["order_id"] for i in reviews if i["order_id"] in (first_flagged, second_flagged)]
    assert mine == [first_flagged, second_flagged], "oldest first"
    since = [i["waiting_since"] for i in risk["items"]]
    assert since == sorted(since)
    item = next(i for i in reviews if i["order_id"] == first_flagged)
    assert item["sla_seconds"] == pytest.approx(1.0)
    assert item["waited_seconds"] > 1.0 and item["overdue"] and item["sla_used"] > 1.0
    assert item["details"]["score"] >= stack.settings.risk_flag_threshold
    assert to_pick not in {i["order_id"] for i in risk["items"]}

    warehouse = await _queue(stack, "warehouse", role="warehouse")
    pick = next(i for i in warehouse["items"] if i["order_id"] == to_pick)
    assert pick["kind"] == "pick_task" and pick["status"] == "open" and pick["overdue"]
    assert pick["sla_seconds"] == pytest.approx(1.0)
    assert warehouse["overdue"] >= 1

    # Once picked and packed, the task leaves the warehouse's queue.
    assert (
        await stack.http("POST", f"/warehouse/tasks/{to_pick}/picked", role="warehouse")
    ).status_code == 200
    assert (
        await stack.http(
            "POST",
            f"/warehouse/tasks/{to_pick}/packed",
            role="warehouse",
            json={"weight_kg": 1.2},
        )
    ).status_code == 200
    await wait_for_status(stack.pool, to_pick, "COMPLETED")
    warehouse = await _queue(stack, "warehouse")
    assert to_pick not in {i["order_id"] for i in warehouse["items"]}

    await _cancel(stack, first_flagged, second_flagged)
    risk = await _queue(stack, "risk")
    assert not {first_flagged, second_flagged} & {i["order_id"] for i in risk["items"]}


async def test_purchasing_sees_the_purchase_request_of_a_shortage(stack: Stack) -> None:
    sku = f"SKU-DEP-{uuid.uuid4().hex[:6].upper()}"
    async with stack.pool.acquire() as conn:
        await catalogue.upsert_product(
            conn,
            sku=sku,
            name="Queue test kettle",
            unit_price=Decimal("12.50"),
            weight_kg=Decimal("1.0"),
            bin_location="Z-9",
        )
        await catalogue.ensure_stock(conn, sku=sku, on_hand=1, reorder_point=0, order_up_to=0)
    order_id = await _place(stack, order_json(items=[(sku, 3)]))
    await wait_for_status(stack.pool, order_id, "BACKORDERED")

    queue = await _queue(stack, "purchasing", role="purchasing")
    request = next(i for i in queue["items"] if i["details"]["sku"] == sku)
    assert request["kind"] == "purchase_request" and request["status"] == "open"
    assert request["details"]["quantity"] >= 2
    assert request["details"]["orders_waiting"] == 1
    assert request["sla_seconds"] == stack.settings.purchase_request_sla.total_seconds()
    assert not request["overdue"]
    await _cancel(stack, order_id)


async def test_purchasing_sees_the_orders_waiting_for_a_release(stack: Stack) -> None:
    sku = f"SKU-PRE-{uuid.uuid4().hex[:6].upper()}"
    async with stack.pool.acquire() as conn:
        await catalogue.upsert_product(
            conn,
            sku=sku,
            name="Queue test console",
            unit_price=Decimal("12.50"),
            weight_kg=Decimal("1.0"),
            bin_location="Z-8",
        )
        await catalogue.ensure_stock(conn, sku=sku, on_hand=5, reorder_point=0, order_up_to=0)

    async def release(at: datetime) -> None:
        response = await stack.http(
            "POST",
            "/purchasing/releases",
            role="purchasing",
            json={"sku": sku, "release_at": at.isoformat(), "note": "supplier's date"},
        )
        assert response.status_code == 200, response.text

    async def waiting_item(moves: int) -> dict:
        for _ in range(200):
            queue = await _queue(stack, "purchasing", role="purchasing")
            found = [i for i in queue["items"] if i["kind"] == "pre_order" and i["ref"] == order_id]
            if found and found[0]["details"]["moves"] == moves:
                return dict(found[0])
            await asyncio.sleep(0.05)
        raise AssertionError(f"{order_id} is not waiting in purchasing's queue ({moves} moves)")

    first = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    await release(first)
    order_id = await _place(stack, order_json(items=[(sku, 1)]))
    item = await waiting_item(0)
    assert item["order_id"] == order_id and item["status"] == "waiting"
    assert item["details"]["skus"] == [sku]
    assert datetime.fromisoformat(item["due_at"]) == first
    assert datetime.fromisoformat(item["details"]["release_at"]) == first
    assert not item["overdue"] and item["sla_seconds"] == pytest.approx(3 * 86400, abs=60)

    # Purchasing moves the date: the waiting order takes it, and so does its due date.
    moved = first + timedelta(days=2)
    await release(moved)
    item = await waiting_item(1)
    assert datetime.fromisoformat(item["due_at"]) == moved

    await _cancel(stack, order_id)
    queue = await _queue(stack, "purchasing")
    assert order_id not in {i["ref"] for i in queue["items"] if i["kind"] == "pre_order"}


async def test_follow_ups_and_feedback_reach_their_departments(stack: Stack) -> None:
    order_id = await _place(stack, order_json())
    await wait_for_status(stack.pool, order_id, "PICKING")
    ticket = f"TCK-{uuid.uuid4().hex[:8]}"
    async with stack.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO follow_ups (order_id, attempt, opened_at, escalated)
               VALUES ($1, 1, now() - interval '2 days', true)""",
            order_id,
        )
        await conn.execute(
            """INSERT INTO feedback_tickets (ticket_id, order_id, request_key, category,
                   department, message, created_at)
               VALUES ($1, $2, $1, 'product', 'quality', 'The mug is chipped', now() - interval '2 hours')""",
            ticket,
            order_id,
        )

    logistics = await _queue(stack, "logistics", role="logistics")
    follow_up = next(i for i in logistics["items"] if i["order_id"] == order_id)
    assert follow_up["kind"] == "follow_up" and follow_up["details"]["escalated"] is True
    assert follow_up["overdue"], "open two days against a one-day follow-up interval"

    quality = await _queue(stack, "quality")
    item = next(i for i in quality["items"] if i["ref"] == ticket)
    assert item["kind"] == "feedback_ticket" and item["order_id"] == order_id
    assert item["details"]["category"] == "product"
    assert item["waited_seconds"] == pytest.approx(7200, abs=120)
    assert not item["overdue"]
    assert ticket not in {i["ref"] for i in (await _queue(stack, "finance"))["items"]}

    summary = await stack.http("GET", "/departments", role="logistics")
    assert summary.status_code == 200
    by_code = {d["department"]: d for d in summary.json()}
    assert list(by_code) == [
        "risk",
        "warehouse",
        "purchasing",
        "logistics",
        "quality",
        "finance",
        "customer_service",
    ]
    assert by_code["quality"]["waiting"] >= 1 and by_code["logistics"]["overdue"] >= 1
    await _cancel(stack, order_id)


async def test_queue_access_by_role(stack: Stack) -> None:
    cases = [
        ("risk", "reviewer", 200),
        ("risk", "admin", 200),
        ("risk", "warehouse", 403),
        ("risk", "storefront", 403),
        ("warehouse", "warehouse", 200),
        ("purchasing", "purchasing", 200),
        ("logistics", "logistics", 200),
        ("logistics", "reviewer", 403),
        ("quality", "admin", 200),
        ("quality", "logistics", 403),
        ("customer_service", "admin", 200),
        ("nowhere", "admin", 404),
    ]
    for department, role, code in cases:
        response = await stack.http("GET", f"/departments/{department}/queue", role=role)
        assert response.status_code == code, (department, role, response.text)
        assert isinstance(response.json().get("detail", ""), str)
    assert (await stack.http("GET", "/departments/risk/queue", role=None)).status_code == 401


async def test_stuck_orders_are_those_past_their_status_sla(stack: Stack) -> None:
    flagged = await _place(stack, order_json(payment_status="failed"))
    picking = await _place(stack, order_json())
    await wait_for_status(stack.pool, flagged, "PENDING_REVIEW")
    await wait_for_status(stack.pool, picking, "PICKING")
    fresh = await _place(stack, order_json(payment_status="failed"))
    await wait_for_status(stack.pool, fresh, "PENDING_REVIEW")

    # Visibility catches up with the search attributes a moment after the workflow.
    found: dict[str, dict] = {}
    for _ in range(100):
        response = await stack.http("GET", "/orders/stuck", role="logistics")
        assert response.status_code == 200, response.text
        found = {s["order_id"]: s for s in response.json()}
        if flagged in found and picking in found:
            break
        await asyncio.sleep(0.2)
    assert found[flagged]["status"] == "PENDING_REVIEW"
    assert found[flagged]["sla"] == "review_sla"
    assert found[flagged]["overdue_seconds"] > 0
    assert found[flagged]["waited_seconds"] > 1.0
    assert found[picking]["status"] == "PICKING" and found[picking]["sla"] == "pick_sla"
    overdue = [s["overdue_seconds"] for s in response.json()]
    assert overdue == sorted(overdue, reverse=True), "most overdue first"

    # Once decided, an order is no longer stuck in review.
    decided = await stack.http(
        "POST",
        f"/reviews/{flagged}/decision",
        role="reviewer",
        json={"decision": "reject", "note": "test"},
    )
    assert decided.status_code == 200, decided.text
    await wait_for_status(stack.pool, flagged, "REJECTED")
    for _ in range(100):
        ids = {
            s["order_id"] for s in (await stack.http("GET", "/orders/stuck", role="admin")).json()
        }
        if flagged not in ids:
            break
        await asyncio.sleep(0.2)
    assert flagged not in ids and picking in ids

    assert (await stack.http("GET", "/orders/stuck", role="storefront")).status_code == 403
    await _cancel(stack, picking, fresh)
