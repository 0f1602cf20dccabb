"""The order workflow end to end on the real stack: dev server, PostgreSQL, worker, API,
carrier simulator; the storefront and operators act through the HTTP API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from orderflow.models import Order, OrderPolicy
from tests.helpers import events_of, order_json, wait_for_status
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        yield running


async def test_order_runs_all_eight_steps_to_completed(stack: Stack) -> None:
    body = order_json(items=[("SKU-RED-MUG", 2), ("SKU-TEA-TIN", 1)])
    response = await stack.http("POST", "/orders", json=body)
    assert response.status_code == 202, response.text
    placed = response.json()
    assert placed["workflow_id"] == f"order-{body['order_id']}"
    assert placed["access_token"].startswith("cust_")

    await wait_for_status(stack.pool, body["order_id"], "COMPLETED")

    events = await events_of(stack.pool, body["order_id"])
    steps = [e["step"] for e in events]
    assert steps == sorted(steps), "events are in step order"
    assert set(steps) == set(range(1, 9)), "every one of the eight steps left an event"
    statuses = [e["status"] for e in events if e["status"]]
    assert statuses == [
        "RECEIVED",
        "CLASSIFIED",
        "APPROVED",
        "RESERVED",
        "PICKING",
        "PACKED",
        "SHIPPED",
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "DELIVERED",
        "COMPLETED",
    ]
    order_id = body["order_id"]
    confirmations = await stack.pool.fetchval(
        "SELECT count(*) FROM notifications WHERE order_id = $1 AND kind = 'order_confirmation'",
        order_id,
    )
    assert confirmations == 1
    reservations = await stack.pool.fetch(
        "SELECT sku, quantity, status FROM reservations WHERE order_id = $1 ORDER BY sku", order_id
    )
    assert [(r["sku"], r["quantity"], r["status"]) for r in reservations] == [
        ("SKU-RED-MUG", 2, "consumed"),
        ("SKU-TEA-TIN", 1, "consumed"),
    ]
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM shipments WHERE order_id = $1", order_id)
        == 1
    )

    # The customer's own token opens the live view, with its timeline.
    view = await stack.http(
        "GET",
        f"/orders/{order_id}",
        role=None,
        headers={"Authorization": f"Bearer {placed['access_token']}"},
    )
    assert view.status_code == 200
    data = view.json()
    assert data["status"] == "COMPLETED"
    assert data["order_type"] == "normal" and data["department"] == "warehouse"
    assert [t["status"] for t in data["timeline"] if t["status"]][-1] == "COMPLETED"
    # ... and no other order.
    other = await stack.http(
        "GET",
        "/orders/some-other-order",
        role=None,
        headers={"Authorization": f"Bearer {placed['access_token']}"},
    )
    assert other.status_code == 403

    # The workflow's own view agrees, and the Web UI can find it by status.
    workflow_view = await stack.storefront.get_status(order_id)
    assert workflow_view.status == "COMPLETED"


async def test_same_order_twice_is_one_workflow_and_one_row(stack: Stack) -> None:
    body = order_json()
    order = Order.model_validate(body)
    first = await stack.storefront.place_order(order)
    second = await stack.storefront.place_order(order)
    assert first.created and not second.created
    assert first.workflow_id == second.workflow_id

    again = await stack.http("POST", "/orders", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["workflow_id"] == first.workflow_id

    await wait_for_status(stack.pool, order.order_id, "COMPLETED")
    after = await stack.http("POST", "/orders", json=body)
    assert after.status_code == 200
    assert after.json()["status"] == "COMPLETED"
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM orders WHERE order_id = $1", order.order_id)
        == 1
    )
    # One run ever under this id (visibility trails the write: wait until it shows the run).
    query = f"WorkflowId = 'order-{order.order_id}'"
    for _ in range(50):
        runs = [w.run_id async for w in stack.client.list_workflows(query)]
        if runs:
            break
        await asyncio.sleep(0.1)
    description = await stack.client.get_workflow_handle(f"order-{order.order_id}").describe()
    assert runs == [description.run_id]


async def test_flagged_order_waits_for_a_reviewer(stack: Stack) -> None:
    body = order_json(payment_status="failed")
    order_id = body["order_id"]
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")

    pending = await stack.http("GET", "/reviews/pending", role="reviewer")
    assert pending.status_code == 200
    task = next(t for t in pending.json() if t["order_id"] == order_id)
    assert task["score"] >= stack.settings.risk_flag_threshold and task["reasons"]

    # Only a reviewer decides.
    wrong_role = await stack.http(
        "POST", f"/reviews/{order_id}/decision", role="warehouse", json={"decision": "approve"}
    )
    assert wrong_role.status_code == 403
    # Rejecting needs a note; the validator refuses and nothing changes.
    no_note = await stack.http(
        "POST", f"/reviews/{order_id}/decision", role="reviewer", json={"decision": "reject"}
    )
    assert no_note.status_code == 422
    assert await wait_for_status(stack.pool, order_id, "PENDING_REVIEW") == "PENDING_REVIEW"

    approved = await stack.http(
        "POST",
        f"/reviews/{order_id}/decision",
        role="reviewer",
        json={"decision": "approve", "note": "called the customer"},
    )
    assert approved.status_code == 200, approved.text
    await wait_for_status(stack.pool, order_id, "COMPLETED")
    events = await events_of(stack.pool, order_id)
    decided = [e for e in events if e["kind"] == "review_approved"]
    assert len(decided) == 1 and decided[0]["actor"] == "reviewer"

    # A second decision, now that none is awaited, is a 409 and changes nothing.
    before = len(await events_of(stack.pool, order_id))
    again = await stack.http(
        "POST",
        f"/reviews/{order_id}/decision",
        role="reviewer",
        json={"decision": "reject", "note": "too late"},
    )
    assert again.status_code == 409
    assert "detail" in again.json()
    assert len(await events_of(stack.pool, order_id)) == before


async def test_decision_on_an_order_awaiting_none_is_409(stack: Stack) -> None:
    body = order_json()
    order_id = body["order_id"]
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    await wait_for_status(stack.pool, order_id, "COMPLETED")
    response = await stack.http(
        "POST", f"/reviews/{order_id}/decision", role="reviewer", json={"decision": "approve"}
    )
    assert response.status_code == 409
    unknown = await stack.http(
        "POST", "/reviews/NO-SUCH-ORDER/decision", role="reviewer", json={"decision": "approve"}
    )
    assert unknown.status_code == 404


def _bad_bodies() -> list[tuple[str, dict, int]]:
    def with_items(items: list[dict]) -> dict:
        body = order_json()
        body["items"] = items
        return body

    price_mismatch = order_json()
    price_mismatch["items"][0]["unit_price"] = "10.00"
    price_mismatch["payment"]["amount"] = "20.00"
    amount_mismatch = order_json()
    amount_mismatch["payment"]["amount"] = "999.00"
    currency_mismatch = order_json()
    currency_mismatch["payment"]["currency"] = "USD"
    foreign_currency = order_json(currency="USD")
    bad_email = order_json()
    bad_email["customer"]["email"] = "not-an-email"
    unknown_sku = with_items([{"sku": "SKU-NOPE", "quantity": 1, "unit_price": "12.50"}])
    unknown_sku["payment"]["amount"] = "12.50"
    huge = with_items([{"sku": "SKU-RED-MUG", "quantity": 50_000, "unit_price": "12.50"}])
    huge["payment"]["amount"] = "625000.00"
    return [
        ("empty items", with_items([]), 422),
        (
            "quantity 0",
            with_items([{"sku": "SKU-RED-MUG", "quantity": 0, "unit_price": "12.50"}]),
            422,
        ),
        (
            "negative quantity",
            with_items([{"sku": "SKU-RED-MUG", "quantity": -2, "unit_price": "12.50"}]),
            422,
        ),
        ("unknown SKU", unknown_sku, 422),
        ("price differs from catalogue", price_mismatch, 422),
        ("payment amount differs from total", amount_mismatch, 422),
        ("payment currency differs", currency_mismatch, 422),
        ("currency the shop does not take", foreign_currency, 422),
        ("malformed e-mail", bad_email, 422),
        ("huge quantity", huge, 422),
    ]


@pytest.mark.parametrize(
    ("case", "body", "code"), _bad_bodies(), ids=[c for c, _, _ in _bad_bodies()]
)
async def test_bad_order_is_refused_and_changes_nothing(
    stack: Stack, case: str, body: dict, code: int
) -> None:
    response = await stack.http("POST", "/orders", json=body)
    assert response.status_code == code, response.text
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    await _assert_nothing_written(stack, body["order_id"])


async def test_tokens_and_body_size_are_enforced(stack: Stack) -> None:
    body = order_json()
    no_token = await stack.http("POST", "/orders", role=None, json=body)
    assert no_token.status_code == 401
    wrong_role = await stack.http("POST", "/orders", role="reviewer", json=body)
    assert wrong_role.status_code == 403
    unknown = await stack.http(
        "POST", "/orders", role=None, json=body, headers={"Authorization": "Bearer guess"}
    )
    assert unknown.status_code == 401
    oversize = await stack.http(
        "POST",
        "/orders",
        content=b"{" + b" " * 200_000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert oversize.status_code == 413
    await _assert_nothing_written(stack, body["order_id"])


async def _assert_nothing_written(stack: Stack, order_id: str) -> None:
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM orders WHERE order_id = $1", order_id) == 0
    )
    with pytest.raises(RPCError):
        await stack.client.get_workflow_handle(f"order-{order_id}").describe()
