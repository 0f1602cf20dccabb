"""Returns on real parts: a customer sends a line of a delivered order back through the API,
the carrier simulator books the return label and carries the parcel back, the warehouse
inspects it, restocked units serve an order waiting for them, and the PSP refunds once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from tests.helpers import order_json, wait_for_status
from tests.integration.fulfilment_support import notifications_of, wait_until
from tests.integration.inventory_support import new_sku
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as s:
        yield s


async def place(stack: Stack, lines: list[tuple[str, int]]) -> dict[str, Any]:
    body = order_json(items=lines)
    for item in body["items"]:
        item["unit_price"] = "10.00"
    body["payment"]["amount"] = str(sum(Decimal("10.00") * q for _, q in lines))
    response = await stack.http("POST", "/orders", json=body)
    assert response.status_code == 202, response.text
    return body


async def delivered(stack: Stack, lines: list[tuple[str, int]]) -> dict[str, Any]:
    body = await place(stack, lines)
    assert await wait_for_status(stack.pool, body["order_id"], "COMPLETED") == "COMPLETED"
    return body


async def ask_return(
    stack: Stack, order_id: str, lines: list[tuple[str, int]], reason: str = "too small"
) -> httpx.Response:
    return await stack.http(
        "POST",
        f"/orders/{order_id}/returns",
        json={"lines": [{"sku": s, "quantity": q} for s, q in lines], "reason": reason},
    )


async def return_row(stack: Stack, return_id: str, *statuses: str) -> Any:
    async def check() -> Any:
        row = await stack.pool.fetchrow("SELECT * FROM returns WHERE return_id = $1", return_id)
        return row if row is not None and row["status"] in statuses else None

    return await wait_until(check, what=f"return {return_id} in {statuses}")


async def hand_in(stack: Stack, row: Any) -> None:
    async with httpx.AsyncClient(base_url=stack.settings.carrier_api_url) as sim:
        response = await sim.post(
            f"/carriers/{row['carrier']}/returns/{row['tracking_number']}/hand-in"
        )
        assert response.status_code == 202, response.text


async def inspect(stack: Stack, return_id: str, findings: list[tuple[str, str]]) -> httpx.Response:
    return await stack.http(
        "POST",
        f"/warehouse/returns/{return_id}/inspection",
        role="warehouse",
        json={"lines": [{"sku": s, "outcome": o, "note": f"{o}d"} for s, o in findings]},
    )


async def psp_refunds(stack: Stack, body: dict[str, Any]) -> list[tuple[str, str]]:
    at_psp = await stack.psp.payment(body["payment"]["transaction_id"])
    return [(r["amount"], r["reason"]) for r in at_psp["refunds"]]


async def test_a_returned_line_is_restocked_serves_a_backorder_and_is_refunded_once(
    stack: Stack,
) -> None:
    kept, returned = (
        await new_sku(stack.pool, 5, prefix="RTK"),
        await new_sku(stack.pool, 1, prefix="RTR"),
    )
    body = await delivered(stack, [(kept, 1), (returned, 1)])
    order_id = body["order_id"]
    # The last unit went with that order: the next one waits for it.
    waiting = await place(stack, [(returned, 1)])
    assert await wait_for_status(stack.pool, waiting["order_id"], "BACKORDERED") == "BACKORDERED"

    response = await ask_return(stack, order_id, [(returned, 1)])
    assert response.status_code == 202, response.text
    return_id = response.json()["return_id"]
    assert response.json()["workflow_id"] == f"return-{order_id}-1"
    row = await return_row(stack, return_id, "LABEL_SENT")
    assert row["tracking_number"] and row["label_url"]
    on_hand = await stack.pool.fetchval("SELECT on_hand FROM inventory WHERE sku = $1", returned)

    await hand_in(stack, row)
    await return_row(stack, return_id, "ARRIVED")
    answer = await inspect(stack, return_id, [(returned, "restock")])
    assert answer.status_code == 200, answer.text
    row = await return_row(stack, return_id, "REFUNDED")

    assert row["refund_amount"] == Decimal("10.00")
    assert await psp_refunds(stack, body) == [("10.00", f"return {return_id}")]
    # The unit went back on hand as a goods receipt, and on to the order waiting for it,
    # which then shipped it: on hand is where it was before the return.
    receipt = await stack.pool.fetchrow(
        "SELECT sku, quantity FROM stock_receipts WHERE receipt_key = $1",
        f"return-{return_id}-{returned}",
    )
    assert (receipt["sku"], receipt["quantity"]) == (returned, 1)
    served = await stack.pool.fetchval(
        "SELECT status FROM backorders WHERE order_id = $1", waiting["order_id"]
    )
    assert served == "served"
    assert (
        await wait_for_status(stack.pool, waiting["order_id"], "COMPLETED", timeout=60)
        == "COMPLETED"
    )
    assert (
        await stack.pool.fetchval("SELECT on_hand FROM inventory WHERE sku = $1", returned)
        == on_hand
    )
    kinds = [
        r["kind"]
        for r in await stack.pool.fetch(
            "SELECT kind FROM notifications WHERE order_id = $1 ORDER BY id", order_id
        )
    ]
    assert kinds.count("return_label") == 1 and kinds.count("return_completed") == 1
    # A second inspection of the same return is refused: it awaits nothing any more.
    again = await inspect(stack, return_id, [(returned, "restock")])
    assert again.status_code == 409
    assert await psp_refunds(stack, body) == [("10.00", f"return {return_id}")]


async def test_a_disposed_line_changes_no_stock_and_is_refunded_per_policy(stack: Stack) -> None:
    sku = await new_sku(stack.pool, 5, prefix="RTD")
    body = await delivered(stack, [(sku, 2)])
    order_id = body["order_id"]
    response = await ask_return(stack, order_id, [(sku, 2)], reason="arrived broken")
    assert response.status_code == 202, response.text
    return_id = response.json()["return_id"]
    row = await return_row(stack, return_id, "LABEL_SENT")
    on_hand = await stack.pool.fetchval("SELECT on_hand FROM inventory WHERE sku = $1", sku)
    await hand_in(stack, row)
    await return_row(stack, return_id, "ARRIVED")
    assert (await inspect(stack, return_id, [(sku, "dispose")])).status_code == 200
    row = await return_row(stack, return_id, "REFUNDED")
    # The policy refunds disposed units, and this return brings back the whole order.
    assert row["refund_amount"] == Decimal("20.00")
    assert await psp_refunds(stack, body) == [("20.00", f"return {return_id}")]
    assert await stack.pool.fetchval("SELECT on_hand FROM inventory WHERE sku = $1", sku) == on_hand
    listed = await stack.http("GET", f"/orders/{order_id}/returns")
    assert listed.status_code == 200
    (only,) = listed.json()
    assert only["status"] == "REFUNDED" and only["lines"][0]["outcome"] == "dispose"


async def test_concurrent_returns_of_the_same_line_accept_only_one(stack: Stack) -> None:
    sku = await new_sku(stack.pool, 5, prefix="RTC")
    body = await delivered(stack, [(sku, 1)])
    answers = await asyncio.gather(
        *(ask_return(stack, body["order_id"], [(sku, 1)]) for _ in range(4))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [202, 409, 409, 409], [a.text for a in answers]
    assert all("detail" in a.json() for a in answers if a.status_code == 409)
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM returns WHERE order_id = $1", body["order_id"]
        )
        == 1
    )


async def test_bad_requests_are_refused_with_the_reason_and_start_nothing(stack: Stack) -> None:
    sku, other = (
        await new_sku(stack.pool, 5, prefix="RTB"),
        await new_sku(stack.pool, 5, prefix="RTO"),
    )
    body = await delivered(stack, [(sku, 1)])
    order_id = body["order_id"]

    too_many = await ask_return(stack, order_id, [(sku, 2)])
    assert too_many.status_code == 422 and "more than the 1 delivered" in too_many.json()["detail"]
    not_a_line = await ask_return(stack, order_id, [(other, 1)])
    assert not_a_line.status_code == 422 and "not a line" in not_a_line.json()["detail"]

    # Delivered 31 days ago: the 30-day window has closed.
    await stack.pool.execute(
        "UPDATE shipments SET delivered_at = now() - interval '31 days' WHERE order_id = $1",
        order_id,
    )
    late = await ask_return(stack, order_id, [(sku, 1)])
    assert late.status_code == 409 and "window" in late.json()["detail"]
    await stack.pool.execute(
        "UPDATE shipments SET delivered_at = now() WHERE order_id = $1", order_id
    )

    first = await ask_return(stack, order_id, [(sku, 1)])
    assert first.status_code == 202, first.text
    again = await ask_return(stack, order_id, [(sku, 1)])
    assert again.status_code == 409 and "returned already" in again.json()["detail"]

    # An order not delivered yet: a product the warehouse has none of keeps it waiting.
    scarce = await new_sku(stack.pool, 0, prefix="RTN")
    pending = await place(stack, [(scarce, 1)])
    await wait_for_status(stack.pool, pending["order_id"], "BACKORDERED")
    early = await ask_return(stack, pending["order_id"], [(scarce, 1)])
    assert early.status_code == 409 and "not been delivered" in early.json()["detail"]

    unknown = await ask_return(stack, "T-no-such-order", [(sku, 1)])
    assert unknown.status_code == 404
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM returns WHERE order_id = ANY($1::text[])",
            [order_id, pending["order_id"]],
        )
        == 1
    )


async def test_a_return_outside_the_rules_waits_for_customer_service(stack: Stack) -> None:
    sku = await new_sku(stack.pool, 5, prefix="RTX")
    await stack.pool.execute("UPDATE products SET returnable = false WHERE sku = $1", sku)
    body = await delivered(stack, [(sku, 1)])
    order_id = body["order_id"]

    first = await ask_return(stack, order_id, [(sku, 1)])
    assert first.status_code == 202 and first.json()["status"] == "REQUESTED", first.text
    return_id = first.json()["return_id"]
    asked = await wait_until(
        lambda: notifications_of(stack, order_id, "return_decision_needed"), what="asked"
    )
    assert [n["recipient"] for n in asked] == ["service-lead@shop.example"]
    wrong = await inspect(stack, return_id, [(sku, "restock")])
    assert wrong.status_code == 409 and "not awaiting inspection" in wrong.json()["detail"]
    refused = await stack.http(
        "POST",
        f"/returns/{return_id}/decision",
        role="admin",
        json={"decision": "reject", "note": "hygiene article"},
    )
    assert refused.status_code == 200 and refused.json()["status"] == "REJECTED", refused.text
    await return_row(stack, return_id, "REJECTED")
    assert len(await notifications_of(stack, order_id, "return_rejected")) == 1
    twice = await stack.http(
        "POST", f"/returns/{return_id}/decision", role="admin", json={"decision": "approve"}
    )
    assert twice.status_code == 409

    # A refused return holds nothing: asked again, customer service approves it this time.
    second = await ask_return(stack, order_id, [(sku, 1)])
    assert second.status_code == 202, second.text
    approved = await stack.http(
        "POST",
        f"/returns/{second.json()['return_id']}/decision",
        role="admin",
        json={"decision": "approve", "note": "unopened"},
    )
    assert approved.status_code == 200, approved.text
    row = await return_row(stack, second.json()["return_id"], "LABEL_SENT")
    assert row["tracking_number"]


async def test_the_carrier_books_a_return_label_once_per_key(stack: Stack) -> None:
    request = {
        "order_id": "T-label-once",
        "return_id": "T-label-once-1",
        "weight_kg": 0.4,
        "origin": {"country": "DE", "postal_code": "10115"},
    }
    async with httpx.AsyncClient(base_url=stack.settings.carrier_api_url) as sim:
        key = {"Idempotency-Key": "return-label-T-label-once-1"}
        first = await sim.post("/carriers/dhl/returns", json=request, headers=key)
        assert first.status_code == 201, first.text
        again = await sim.post("/carriers/dhl/returns", json=request, headers=key)
        assert again.status_code == 200 and again.json() == first.json()
        other = await sim.post(
            "/carriers/dhl/returns", json={**request, "return_id": "T-label-once-2"}, headers=key
        )
        assert other.status_code == 422
        number = first.json()["tracking_number"]
        label = await sim.get(f"/carriers/dhl/returns/{number}/label")
        assert label.status_code == 200 and "T-label-once-1" in label.text
        status = await sim.get(f"/carriers/dhl/shipments/{number}")
        assert status.json()["status"] == "BOOKED", "silent until handed in"


async def test_the_customer_asks_for_a_return_with_the_order_token(stack: Stack) -> None:
    sku = await new_sku(stack.pool, 5, prefix="RTP")
    body = order_json(items=[(sku, 1)])
    body["items"][0]["unit_price"] = body["payment"]["amount"] = "10.00"
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202, placed.text
    token, order_id = placed.json()["access_token"], body["order_id"]
    customer = {"Authorization": f"Bearer {token}"}
    assert await wait_for_status(stack.pool, order_id, "COMPLETED") == "COMPLETED"

    page = await stack.http("GET", f"/orders/{order_id}", role=None, headers=customer)
    assert page.json()["actions"]["return_items"] is True
    asked = await stack.http(
        "POST",
        f"/orders/{order_id}/returns",
        role=None,
        headers=customer,
        json={"lines": [{"sku": sku, "quantity": 1}], "reason": "wrong colour"},
    )
    assert asked.status_code == 202, asked.text
    listed = await stack.http("GET", f"/orders/{order_id}/returns", role=None, headers=customer)
    assert [r["return_id"] for r in listed.json()] == [asked.json()["return_id"]]
    # Another order's token opens nothing here.
    other = await stack.http("GET", "/orders/T-someone-else/returns", role=None, headers=customer)
    assert other.status_code == 403

    await stack.pool.execute(
        "UPDATE shipments SET delivered_at = now() - interval '31 days' WHERE order_id = $1",
        order_id,
    )
    page = await stack.http("GET", f"/orders/{order_id}", role=None, headers=customer)
    assert page.json()["actions"]["return_items"] is False


async def test_the_same_request_key_answers_with_the_same_return(stack: Stack) -> None:
    sku = await new_sku(stack.pool, 5, prefix="RTI")
    body = await delivered(stack, [(sku, 2)])
    order_id = body["order_id"]
    key = {"Idempotency-Key": f"ret-{order_id}"}
    request = {"lines": [{"sku": sku, "quantity": 1}], "reason": "one too many"}
    answers = await asyncio.gather(
        *(
            stack.http("POST", f"/orders/{order_id}/returns", json=request, headers=key)
            for _ in range(3)
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 202], [a.text for a in answers]
    assert len({a.json()["return_id"] for a in answers}) == 1
    # Another key is another request: the second unit may still be returned.
    other = await stack.http(
        "POST",
        f"/orders/{order_id}/returns",
        json=request,
        headers={"Idempotency-Key": f"ret-{order_id}-2"},
    )
    assert other.status_code == 202 and other.json()["return_id"] == f"{order_id}-2"


async def test_a_label_the_carrier_refuses_waits_for_customer_service(stack: Stack) -> None:
    sku = await new_sku(stack.pool, 5, prefix="RTL")
    body = await delivered(stack, [(sku, 1)])
    order_id = body["order_id"]
    carrier = await stack.pool.fetchval(
        "SELECT carrier FROM shipments WHERE order_id = $1", order_id
    )
    # The carrier the parcel came with is unknown to the carrier's API now (404, for good).
    await stack.pool.execute("UPDATE shipments SET carrier = 'gone' WHERE order_id = $1", order_id)
    response = await ask_return(stack, order_id, [(sku, 1)])
    assert response.status_code == 202, response.text
    return_id = response.json()["return_id"]
    await return_row(stack, return_id, "REQUESTED")
    queue = await stack.http("GET", "/departments/customer_service/queue", role="admin")
    (item,) = [i for i in queue.json()["items"] if i["ref"] == return_id]
    assert item["kind"] == "return_decision" and item["order_id"] == order_id
    asked = await stack.pool.fetchval(
        """SELECT details ->> 'why' FROM order_events
           WHERE order_id = $1 AND kind = 'return_decision_asked'""",
        order_id,
    )
    assert "refused the return label" in asked

    await stack.pool.execute(
        "UPDATE shipments SET carrier = $2 WHERE order_id = $1", order_id, carrier
    )
    decided = await stack.http(
        "POST",
        f"/returns/{return_id}/decision",
        role="admin",
        json={"decision": "approve", "note": "carrier mended"},
    )
    assert decided.status_code == 200, decided.text
    row = await return_row(stack, return_id, "LABEL_SENT")
    assert row["carrier"] == carrier and row["tracking_number"]
