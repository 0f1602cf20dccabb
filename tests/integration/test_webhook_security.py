"""The carrier webhook on the real stack: only signed events count, each is applied once,
and what is refused or ignored is still on record."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from orderflow.signing import carrier_secret, signed_headers
from tests.helpers import events_of, wait_for_status
from tests.integration.fulfilment_support import (
    add_product,
    carrier_control,
    place,
    post_tracking,
    tracking_body,
    wait_awaiting,
)
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        # The carrier books but stays silent: the tests post its events themselves.
        await carrier_control(running, mode="normal", event_interval_seconds=3600)
        yield running


async def _shipped(stack: Stack) -> tuple[str, str, str]:
    """An order handed to the carrier and waiting for its delivery: (order, carrier, parcel)."""
    sku = await add_product(stack)
    order, _ = await place(stack, OrderPolicy.instant(), [(sku, 1)])
    view = await wait_awaiting(stack, order.order_id, "delivery")
    assert view.carrier and view.tracking_number
    return order.order_id, view.carrier, view.tracking_number


async def _received(stack: Stack, event_id: str) -> list[dict]:
    rows = await stack.pool.fetch(
        "SELECT carrier, order_id, outcome, status FROM tracking_events WHERE event_id = $1",
        event_id,
    )
    return [dict(r) for r in rows]


async def test_unsigned_badly_signed_and_stale_events_are_refused(stack: Stack) -> None:
    order_id, carrier, parcel = await _shipped(stack)
    body = tracking_body(parcel, "IN_TRANSIT", event_id=f"{parcel}-sec-1")

    unsigned = await post_tracking(stack, carrier, body, signed=False)
    assert unsigned.status_code == 401
    forged = await post_tracking(stack, carrier, body, secret="guessed")
    assert forged.status_code == 401
    other_carrier = await post_tracking(
        stack, carrier, body, secret=f"dev-carrier-secret-{carrier}x"
    )
    assert other_carrier.status_code == 401
    stale = await post_tracking(stack, carrier, body, timestamp=int(time.time()) - 3600)
    assert stale.status_code == 401
    # A valid signature over another body does not sign this one.
    tampered = tracking_body(parcel, "DELIVERED", event_id=f"{parcel}-sec-1")
    headers = {
        "Content-Type": "application/json",
        **signed_headers(carrier_secret(stack.settings, carrier), body, int(time.time())),
    }
    swapped = await stack.api.post(f"/carriers/{carrier}/events", content=tampered, headers=headers)
    assert swapped.status_code == 401
    # An unknown carrier is not told apart from a bad signature...
    unsigned_unknown = await post_tracking(stack, "pigeon", body, signed=False)
    assert unsigned_unknown.status_code == 401
    assert unsigned_unknown.json()["detail"] == unsigned.json()["detail"]
    forged_unknown = await post_tracking(stack, "pigeon", body, secret="guessed")
    assert (forged_unknown.status_code, forged_unknown.json()) == (401, forged.json())
    # ...only once the caller has proven it holds that carrier's secret.
    unknown_carrier = await post_tracking(stack, "pigeon", body)
    assert unknown_carrier.status_code == 404
    assert "unknown carrier" in unknown_carrier.json()["detail"]

    assert all(r.json()["detail"] for r in (unsigned, forged, stale, swapped))
    assert await _received(stack, f"{parcel}-sec-1") == []
    view = await stack.storefront.get_status(order_id)
    assert view.status == "SHIPPED", "nothing reached the order"


async def test_a_replayed_event_is_a_duplicate_and_applied_once(stack: Stack) -> None:
    order_id, carrier, parcel = await _shipped(stack)
    body = tracking_body(parcel, "IN_TRANSIT", event_id=f"{parcel}-r-1")
    first = await post_tracking(stack, carrier, body)
    assert first.status_code == 200, first.text
    assert first.json() == {"event_id": f"{parcel}-r-1", "outcome": "applied", "order_id": order_id}
    await wait_for_status(stack.pool, order_id, "IN_TRANSIT")

    for _ in range(3):
        again = await post_tracking(stack, carrier, body)
        assert again.status_code == 200
        assert again.json()["outcome"] == "duplicate"

    # An exception from the carrier is recorded without moving the status.
    exception = await post_tracking(
        stack, carrier, tracking_body(parcel, "EXCEPTION", event_id=f"{parcel}-r-2")
    )
    assert exception.json()["outcome"] == "applied"
    delivered = await post_tracking(
        stack, carrier, tracking_body(parcel, "DELIVERED", event_id=f"{parcel}-r-3")
    )
    assert delivered.json()["outcome"] == "applied"
    await wait_for_status(stack.pool, order_id, "COMPLETED")

    events = await events_of(stack.pool, order_id)
    kinds = [e["kind"] for e in events]
    assert kinds.count("tracking_in_transit") == 1
    assert kinds.count("tracking_exception") == 1
    assert kinds.count("tracking_delivered") == 1
    exception_event = next(e for e in events if e["kind"] == "tracking_exception")
    assert exception_event["status"] is None and exception_event["actor"] == "carrier"
    assert await _received(stack, f"{parcel}-r-1") == [
        {"carrier": carrier, "order_id": order_id, "outcome": "applied", "status": "IN_TRANSIT"}
    ]
    statuses = [e["status"] for e in events if e["status"]]
    assert statuses.count("IN_TRANSIT") == 1 and statuses.count("DELIVERED") == 1

    # The order's process is over: a new event is recorded and acknowledged, not a 500.
    late = await post_tracking(
        stack, carrier, tracking_body(parcel, "DELIVERED", event_id=f"{parcel}-r-4")
    )
    assert late.status_code == 200, late.text
    assert late.json()["outcome"] == "order_closed"
    assert (await _received(stack, f"{parcel}-r-4"))[0]["outcome"] == "order_closed"


async def test_an_unknown_tracking_number_is_refused_and_recorded(stack: Stack) -> None:
    _, carrier, _ = await _shipped(stack)
    body = tracking_body("NOSUCHPARCEL1", "DELIVERED", event_id="NOSUCHPARCEL1-1")
    response = await post_tracking(stack, carrier, body)
    assert response.status_code == 404
    assert "NOSUCHPARCEL1" in response.json()["detail"]
    assert await _received(stack, "NOSUCHPARCEL1-1") == [
        {
            "carrier": carrier,
            "order_id": None,
            "outcome": "unknown_tracking_number",
            "status": "DELIVERED",
        }
    ]


async def test_a_malformed_event_is_refused(stack: Stack) -> None:
    _, carrier, parcel = await _shipped(stack)
    body = tracking_body(parcel, "TELEPORTED", event_id=f"{parcel}-m-1")
    response = await post_tracking(stack, carrier, body)
    assert response.status_code == 422
    assert await _received(stack, f"{parcel}-m-1") == []
