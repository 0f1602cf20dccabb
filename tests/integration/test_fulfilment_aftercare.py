"""Steps 7 and 8 on the real stack: the full manual path through the HTTP API to a stored
review, feedback tickets routed by category, a complaint holding completion, the customer's
confirmation of receipt, and the review window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.access import customer_token
from orderflow.models import OrderPolicy
from tests.helpers import events_of, order_json, wait_for_status
from tests.integration.fulfilment_support import (
    add_product,
    notifications_of,
    place,
    wait_awaiting,
)
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

# Orders placed through the API wait for the warehouse, for the customer (or an hour's
# quiet period) and keep their review window open for an hour.
API_POLICY = OrderPolicy.instant(auto_warehouse=False).model_copy(
    update={"quiet_period": timedelta(hours=1), "review_window": timedelta(hours=1)}
)


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    # One test sends feedback as fast as it can until the review window closes: no abuse
    # limit may answer first.
    async with running_stack(
        temporal_env,
        database_url,
        policy=API_POLICY,
        feedback_tickets_per_order=1000,
        rate_limit_feedback_burst=1000,
    ) as running:
        yield running


def _as_customer(stack: Stack, order_id: str) -> dict[str, Any]:
    token = customer_token(stack.settings.customer_token_secret, order_id)
    return {"role": None, "headers": {"Authorization": f"Bearer {token}"}}


async def test_full_manual_path_through_the_api_to_a_stored_review(stack: Stack) -> None:
    sku = await add_product(stack, weight_kg="0.450", bin_location="B-04-2")
    body = order_json(items=[(sku, 2)])
    order_id = body["order_id"]
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202
    customer: dict[str, Any] = {
        "role": None,
        "headers": {"Authorization": f"Bearer {placed.json()['access_token']}"},
    }

    # The warehouse finds the task, picks and packs it.
    await wait_awaiting(stack, order_id, "picked")
    tasks = (await stack.http("GET", "/warehouse/tasks", role="warehouse")).json()
    task = next(t for t in tasks if t["order_id"] == order_id)
    assert task["lines"] == [
        {"sku": sku, "name": f"Test product {sku}", "quantity": 2, "bin_location": "B-04-2"}
    ]
    assert (
        await stack.http("POST", f"/warehouse/tasks/{order_id}/picked", role="warehouse")
    ).status_code == 200
    packed = await stack.http(
        "POST", f"/warehouse/tasks/{order_id}/packed", role="warehouse", json={"weight_kg": 1.2}
    )
    assert packed.status_code == 200

    # The carrier (simulator) books and reports; the order waits for the customer.
    await wait_awaiting(stack, order_id, "receipt_confirmation")
    assert await wait_for_status(stack.pool, order_id, "DELIVERED") == "DELIVERED"
    early = await stack.http(
        "POST", f"/orders/{order_id}/review", json={"rating": 5, "comment": "great"}, **customer
    )
    assert early.status_code == 409 and "review window" in early.json()["detail"]

    question = await stack.http(
        "POST",
        f"/orders/{order_id}/feedback",
        json={"category": "other", "message": "Do you gift-wrap?", "request_key": "gift"},
        **customer,
    )
    assert question.status_code == 201, question.text
    assert question.json()["department"] == "customer_service"
    assert question.json()["holds_completion"] is False

    confirmed = await stack.http("POST", f"/orders/{order_id}/confirm-receipt", **customer)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "COMPLETED"
    again = await stack.http("POST", f"/orders/{order_id}/confirm-receipt", **customer)
    assert again.status_code == 409

    invitation = await notifications_of(stack, order_id, "review_invitation")
    assert len(invitation) == 1
    bad = await stack.http("POST", f"/orders/{order_id}/review", json={"rating": 6}, **customer)
    assert bad.status_code == 422
    review = await stack.http(
        "POST",
        f"/orders/{order_id}/review",
        json={"rating": 4, "comment": "Mugs arrived whole."},
        **customer,
    )
    assert review.status_code == 201, review.text
    assert review.json()["rating"] == 4
    second = await stack.http("POST", f"/orders/{order_id}/review", json={"rating": 1}, **customer)
    assert second.status_code == 409 and "reviewed already" in second.json()["detail"]
    stored = await stack.pool.fetchrow(
        "SELECT rating, comment, reviewed_by FROM product_reviews WHERE order_id = $1", order_id
    )
    assert dict(stored) == {
        "rating": 4,
        "comment": "Mugs arrived whole.",
        "reviewed_by": f"customer:{order_id}",
    }
    # Another customer's token does not open this order.
    other = await stack.http(
        "POST", f"/orders/{order_id}/review", json={"rating": 1}, **_as_customer(stack, "X-1")
    )
    assert other.status_code == 403

    events = await events_of(stack.pool, order_id)
    completed = next(e for e in events if e["kind"] == "order_completed")
    assert completed["status"] == "COMPLETED"
    how = await stack.pool.fetchval(
        "SELECT details->>'how' FROM order_events WHERE order_id = $1 AND kind = 'order_completed'",
        order_id,
    )
    assert how == "confirmed_by_customer"
    assert [e["kind"] for e in events].count("review_received") == 1
    view = await stack.storefront.get_status(order_id)
    assert view.status == "COMPLETED" and view.awaiting == "review"


async def test_feedback_is_routed_by_category_acknowledged_and_idempotent(stack: Stack) -> None:
    sku = await add_product(stack)
    order, _ = await place(stack, API_POLICY, [(sku, 1)])
    order_id = order.order_id
    customer = _as_customer(stack, order_id)
    await wait_awaiting(stack, order_id, "picked")

    expected = {
        "delivery": ("logistics", "logistics-lead@shop.example"),
        "product": ("quality", "quality-lead@shop.example"),
        "payment": ("finance", "finance-lead@shop.example"),
        "other": ("customer_service", "service-lead@shop.example"),
    }
    tickets = {}
    for category, (department, lead) in expected.items():
        response = await stack.http(
            "POST",
            f"/orders/{order_id}/feedback",
            json={"category": category, "message": f"about {category}", "request_key": category},
            **customer,
        )
        assert response.status_code == 201, response.text
        receipt = response.json()
        assert receipt["department"] == department and receipt["ticket_id"].startswith("FB-")
        assert receipt["holds_completion"] is False, "nothing holds before delivery"
        tickets[category] = receipt["ticket_id"]
        notices = await stack.pool.fetch(
            "SELECT recipient FROM notifications WHERE notification_key = $1",
            f"{order_id}:feedback:{receipt['ticket_id']}:department",
        )
        assert [n["recipient"] for n in notices] == [lead]

    # The same request key again: the same ticket, not a second one (also by header).
    repeat = await stack.http(
        "POST",
        f"/orders/{order_id}/feedback",
        json={"category": "delivery", "message": "about delivery", "request_key": "delivery"},
        **customer,
    )
    # (The key is also the Update's id: Temporal answers a repeat with the first answer.)
    assert repeat.status_code in (200, 201)
    assert repeat.json()["ticket_id"] == tickets["delivery"]
    by_header = [
        await stack.http(
            "POST",
            f"/orders/{order_id}/feedback",
            json={"category": "other", "message": "header key"},
            headers={"Idempotency-Key": "hdr-1"},
        )
        for _ in range(2)
    ]
    assert by_header[0].status_code == 201
    assert by_header[0].json()["ticket_id"] == by_header[1].json()["ticket_id"]
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM feedback_tickets WHERE order_id = $1", order_id
        )
        == 5
    )

    listed = await stack.http("GET", f"/orders/{order_id}/feedback", **customer)
    assert sorted(t["ticket_id"] for t in listed.json()) == sorted(
        [*tickets.values(), by_header[0].json()["ticket_id"]]
    )
    acknowledged = await notifications_of(stack, order_id, "feedback_acknowledged")
    assert len(acknowledged) == 5
    assert any(tickets["payment"] in n["body"] for n in acknowledged)

    wrong_role = await stack.http(
        "POST",
        f"/orders/{order_id}/feedback",
        role="warehouse",
        json={"category": "other", "message": "hi"},
    )
    assert wrong_role.status_code == 403
    invalid = await stack.http(
        "POST", f"/orders/{order_id}/feedback", json={"category": "weather", "message": "hi"}
    )
    assert invalid.status_code == 422

    # Once the order's process has ended, feedback is a 409.
    await stack.storefront.cancel(order_id, "test over")
    await stack.storefront.handle(order_id).result()
    closed = await stack.http(
        "POST",
        f"/orders/{order_id}/feedback",
        json={"category": "other", "message": "still there?", "request_key": "late"},
        **customer,
    )
    assert closed.status_code == 409


async def test_a_complaint_in_the_quiet_period_holds_completion_until_resolved(
    stack: Stack,
) -> None:
    sku = await add_product(stack)
    policy = OrderPolicy.instant().model_copy(update={"quiet_period": timedelta(seconds=3)})
    order, _ = await place(stack, policy, [(sku, 1)])
    order_id = order.order_id
    await wait_awaiting(stack, order_id, "receipt_confirmation")
    complaint = await stack.http(
        "POST",
        f"/orders/{order_id}/feedback",
        json={"category": "product", "message": "The mug is chipped.", "request_key": "chip"},
        **_as_customer(stack, order_id),
    )
    assert complaint.status_code == 201
    ticket = complaint.json()
    assert ticket["department"] == "quality" and ticket["holds_completion"] is True

    view = await wait_awaiting(stack, order_id, "complaint_resolution")
    assert view.status == "DELIVERED", "the quiet period passed, the complaint holds it"

    # Quality has no operator role of its own: logistics may not, admin may.
    path = f"/feedback/{ticket['ticket_id']}/resolution"
    assert (await stack.http("POST", path, role="logistics", json={})).status_code == 403
    resolved = await stack.http("POST", path, role="admin", json={"note": "Replacement mug sent."})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"
    await wait_for_status(stack.pool, order_id, "COMPLETED")
    assert (await stack.http("POST", path, role="admin", json={})).json()["status"] == "resolved"
    assert len(await notifications_of(stack, order_id, "feedback_resolved")) == 1
    kinds = [e["kind"] for e in await events_of(stack.pool, order_id)]
    assert kinds.index("feedback_resolved") < kinds.index("order_completed")
    assert (
        await stack.http("POST", "/feedback/FB-NOPE/resolution", role="admin", json={})
    ).status_code == 404


async def test_reviews_only_within_the_review_window(stack: Stack) -> None:
    sku = await add_product(stack)
    policy = OrderPolicy.instant().model_copy(update={"review_window": timedelta(seconds=2)})
    within, _ = await place(stack, policy, [(sku, 1)])
    late, _ = await place(stack, policy, [(sku, 1)])
    for order in (within, late):
        await wait_awaiting(stack, order.order_id, "review")

    ok = await stack.http(
        "POST", f"/orders/{within.order_id}/review", json={"rating": 5, "comment": "lovely"}
    )
    assert ok.status_code == 201, ok.text

    final = await stack.storefront.handle(late.order_id).result()
    assert final.status == "COMPLETED" and final.awaiting is None
    closed = await stack.http("POST", f"/orders/{late.order_id}/review", json={"rating": 3})
    assert closed.status_code == 409
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM product_reviews WHERE order_id = $1", late.order_id
        )
        == 0
    )
    # The window closes with the reviewed order's process too.
    await stack.storefront.handle(within.order_id).result()


async def test_feedback_in_flight_as_the_window_closes_is_answered(stack: Stack) -> None:
    sku = await add_product(stack)
    policy = OrderPolicy.instant().model_copy(update={"review_window": timedelta(seconds=1)})
    order, _ = await place(stack, policy, [(sku, 1)])
    await wait_awaiting(stack, order.order_id, "review")

    async def send(n: int) -> int:
        response = await stack.http(
            "POST",
            f"/orders/{order.order_id}/feedback",
            json={"category": "other", "message": f"note {n}", "request_key": f"n{n}"},
        )
        return response.status_code

    codes: list[int] = []
    while True:
        code = await send(len(codes))
        codes.append(code)
        if code != 201:
            break
        await asyncio.sleep(0.05)
    # Every ticket the API acknowledged exists; after the window, 409.
    assert codes[-1] == 409 and set(codes[:-1]) == {201}
    stored = await stack.pool.fetchval(
        "SELECT count(*) FROM feedback_tickets WHERE order_id = $1", order.order_id
    )
    assert stored == len(codes) - 1
