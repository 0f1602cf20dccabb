"""Helpers of the fulfilment, webhook and cancellation tests: own products, signed carrier
events, the carrier simulator's controls, and waiting on what a workflow awaits."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx

from db.repositories import catalogue
from orderflow.models import Order, OrderPolicy, OrderView
from orderflow.signing import carrier_secret, signed_headers
from starter.order_client import PlacedOrder
from tests.helpers import order_json
from tests.servers import Stack

# Every product of these tests costs this, so `order_json` prices it right.
PRICE = "12.50"


async def add_product(
    stack: Stack, *, weight_kg: str = "0.500", on_hand: int = 100, bin_location: str = "Z-01-1"
) -> str:
    """A product of the test's own, so stock and history are not shared with other tests."""
    sku = f"SKU-T{uuid.uuid4().hex[:10].upper()}"
    async with stack.pool.acquire() as conn:
        await catalogue.upsert_product(
            conn,
            sku=sku,
            name=f"Test product {sku}",
            unit_price=Decimal(PRICE),
            weight_kg=Decimal(weight_kg),
            bin_location=bin_location,
        )
        await catalogue.ensure_stock(conn, sku=sku, on_hand=on_hand, reorder_point=0, order_up_to=0)
    return sku


async def place(
    stack: Stack, policy: OrderPolicy, items: list[tuple[str, int]], **overrides: Any
) -> tuple[Order, PlacedOrder]:
    """Place an order through the storefront client with a policy of the test's own."""
    order = Order.model_validate(order_json(items=items, **overrides))
    placed = await stack.storefront.place_order(order, policy=policy)
    return order, placed


async def wait_until(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 60.0, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def wait_awaiting(stack: Stack, order_id: str, awaiting: str) -> OrderView:
    """The workflow's view once it waits for `awaiting`."""

    async def check() -> OrderView | None:
        view = await stack.storefront.get_status(order_id)
        return view if view.awaiting == awaiting else None

    result: OrderView = await wait_until(check, what=f"{order_id} awaiting {awaiting}")
    return result


async def carrier_control(stack: Stack, **changes: Any) -> dict[str, Any]:
    """Change the carrier simulator's behaviour (`POST /control`)."""
    async with httpx.AsyncClient(base_url=stack.settings.carrier_api_url) as sim:
        response = await sim.post("/control", json=changes)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


async def simulator_shipments(stack: Stack) -> int:
    """How many parcels the carrier simulator has booked so far."""
    async with httpx.AsyncClient(base_url=stack.settings.carrier_api_url) as sim:
        count: int = (await sim.get("/healthz")).json()["shipments"]
        return count


async def carrier_events(stack: Stack, carrier: str, tracking_number: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.settings.carrier_api_url) as sim:
        response = await sim.get(f"/carriers/{carrier}/shipments/{tracking_number}")
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["events"]
        return events


def tracking_body(
    tracking_number: str, status: str, *, event_id: str | None = None, at: str | None = None
) -> bytes:
    return json.dumps(
        {
            "event_id": event_id or f"{tracking_number}-t{uuid.uuid4().hex[:8]}",
            "tracking_number": tracking_number,
            "status": status,
            "at": at or "2026-11-25T12:00:00+00:00",
        }
    ).encode()


async def post_tracking(
    stack: Stack,
    carrier: str,
    body: bytes,
    *,
    secret: str | None = None,
    timestamp: int | None = None,
    signed: bool = True,
) -> httpx.Response:
    """Post a carrier event to the webhook, signed as that carrier would (or not)."""
    headers = {"Content-Type": "application/json"}
    if signed:
        key = secret if secret is not None else carrier_secret(stack.settings, carrier)
        headers.update(signed_headers(key, body, timestamp or int(time.time())))
    return await stack.api.post(f"/carriers/{carrier}/events", content=body, headers=headers)


async def notifications_of(stack: Stack, order_id: str, kind: str) -> list[Any]:
    return await stack.pool.fetch(
        "SELECT recipient, subject, body FROM notifications WHERE order_id = $1 AND kind = $2 ORDER BY id",
        order_id,
        kind,
    )


async def on_hand(stack: Stack, sku: str) -> tuple[int, int]:
    row = await stack.pool.fetchrow("SELECT on_hand, reserved FROM inventory WHERE sku = $1", sku)
    return int(row["on_hand"]), int(row["reserved"])
