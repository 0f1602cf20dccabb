"""Small helpers shared by the integration tests: orders to place, and waiting on them."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import asyncpg

from orderflow.payload_codec import data_converter
from orderflow.settings import Settings

# What every test client and worker speaks: production's converter, encryption included.
CONVERTER = data_converter(Settings())

PRICES = {
    "SKU-RED-MUG": "12.50",
    "SKU-TEA-TIN": "8.90",
    "SKU-KETTLE": "59.00",
    "SKU-TEAPOT": "45.00",
}


def order_json(
    *,
    order_id: str | None = None,
    items: list[tuple[str, int]] | None = None,
    payment_status: str = "captured",
    customer_id: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid storefront order (unique id), with any field overridden.

    Customer, e-mail, address and payment are unique too, so that orders of other tests in
    the same database never count as this order's velocity for the risk review.
    """
    lines = items or [("SKU-RED-MUG", 2)]
    item_list = [
        {"sku": sku, "quantity": qty, "unit_price": PRICES.get(sku, "12.50")} for sku, qty in lines
    ]
    total = sum(Decimal(i["unit_price"]) * i["quantity"] for i in item_list)
    customer = customer_id or f"C-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {
        "order_id": order_id or f"T-{uuid.uuid4().hex[:12]}",
        "channel": "web",
        "customer": {"id": customer, "email": f"{customer.lower()}@example.com", "name": "Ann Lee"},
        "items": item_list,
        "currency": "EUR",
        "shipping_address": {
            "name": "Ann Lee",
            "line1": f"{uuid.uuid4().hex[:10]} Main St",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "billing_address": None,
        "payment": {
            "method": "card",
            "transaction_id": f"pay_{uuid.uuid4().hex[:8]}",
            "amount": str(total),
            "status": payment_status,
        },
        "promo_code": None,
        "service_level": "standard",
    }
    body.update(overrides)
    return body


async def wait_for_status(
    pool: asyncpg.Pool, order_id: str, *statuses: str, timeout: float = 60.0
) -> str:
    """Poll the shared view until the order reaches one of `statuses`."""
    deadline = time.monotonic() + timeout
    current = None
    while time.monotonic() < deadline:
        current = await pool.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id)
        if current in statuses:
            return str(current)
        await asyncio.sleep(0.1)
    raise AssertionError(f"order {order_id} stayed {current}, expected one of {statuses}")


async def events_of(pool: asyncpg.Pool, order_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT step, status, kind, actor, event_key FROM order_events WHERE order_id = $1 ORDER BY id",
        order_id,
    )
