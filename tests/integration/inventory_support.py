"""Shared by the inventory tests: a fresh SKU per test, orders written straight to PostgreSQL
(for the repository- and activity-level tests), and the whole-inventory checks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from db.repositories import catalogue, inventory, orders
from orderflow.models import Order
from tests.helpers import order_json

PRICE = "10.00"


async def new_sku(
    pool: asyncpg.Pool,
    on_hand: int,
    *,
    reorder_point: int = 0,
    order_up_to: int = 0,
    prefix: str = "INV",
) -> str:
    """A product of its own with `on_hand` units, so no other test touches its stock."""
    sku = f"{prefix}-{uuid.uuid4().hex[:10].upper()}"
    async with pool.acquire() as conn, conn.transaction():
        await catalogue.upsert_product(
            conn,
            sku=sku,
            name=f"Test item {sku}",
            unit_price=Decimal(PRICE),
            weight_kg=Decimal("0.400"),
            bin_location="T-01-1",
        )
        await catalogue.ensure_stock(
            conn, sku=sku, on_hand=on_hand, reorder_point=reorder_point, order_up_to=order_up_to
        )
    return sku


def make_order(lines: list[tuple[str, int]], *, placed_at: datetime | None = None) -> Order:
    body = order_json(items=lines)
    for item in body["items"]:
        item["unit_price"] = PRICE
    total = sum(Decimal(PRICE) * q for _, q in lines)
    body["payment"]["amount"] = str(total)
    if placed_at is not None:
        body["placed_at"] = placed_at.isoformat()
    return Order.model_validate(body)


async def record_orders(
    pool: asyncpg.Pool, lines_per_order: list[list[tuple[str, int]]], *, status: str = "APPROVED"
) -> list[Order]:
    """Write orders as step 3 leaves them, placed one millisecond apart in list order."""
    start = datetime.now(UTC)
    made = []
    async with pool.acquire() as conn, conn.transaction():
        for n, lines in enumerate(lines_per_order):
            placed_at = start + timedelta(milliseconds=n)
            order = make_order(lines, placed_at=placed_at)
            await orders.insert_order(
                conn,
                order,
                workflow_id=f"order-{order.order_id}",
                placed_at=placed_at,
                status=status,
            )
            made.append(order)
    return made


async def stock(pool: asyncpg.Pool, sku: str) -> asyncpg.Record:
    (row,) = await inventory.stock_levels(pool, sku)
    return row


async def open_requests(pool: asyncpg.Pool, sku: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, quantity, reason FROM purchase_requests WHERE sku = $1 AND status = 'open'",
        sku,
    )


async def assert_consistent(pool: asyncpg.Pool) -> None:
    """The invariant check of `orderflow inventory check`, over the whole database."""
    violations = [dict(r) for r in await inventory.invariant_violations(pool)]
    assert violations == [], violations
    leaked = [dict(r) for r in await inventory.leaks(pool)]
    assert leaked == [], leaked
    negative = await pool.fetchval(
        "SELECT count(*) FROM inventory WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand"
    )
    assert negative == 0
